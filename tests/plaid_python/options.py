"""Every request option plaid-python exposes on the endpoints the simulator serves, and the errors
it raises, against the simulator, with Plaid's official Python client unchanged.

Usage: python3 options.py <base_url> <client_id> <secret>

The client sends each option exactly as it would to Plaid; the simulator must accept what Plaid's
spec accepts, honour what it changes, and answer errors with Plaid's full error body (which the
client surfaces as ApiException with that body). Exits 0 printing "OK: ..." on success, 1 with a
message on the first mismatch.
"""

import datetime
import json
import sys

import plaid
from plaid.api import plaid_api
from plaid.model.accounts_balance_get_request import AccountsBalanceGetRequest
from plaid.model.accounts_balance_get_request_options import AccountsBalanceGetRequestOptions
from plaid.model.accounts_get_request import AccountsGetRequest
from plaid.model.accounts_get_request_options import AccountsGetRequestOptions
from plaid.model.country_code import CountryCode
from plaid.model.item_get_request import ItemGetRequest
from plaid.model.item_public_token_exchange_request import ItemPublicTokenExchangeRequest
from plaid.model.item_remove_request import ItemRemoveRequest
from plaid.model.item_webhook_update_request import ItemWebhookUpdateRequest
from plaid.model.link_token_create_hosted_link import LinkTokenCreateHostedLink
from plaid.model.link_token_create_request import LinkTokenCreateRequest
from plaid.model.link_token_create_request_update import LinkTokenCreateRequestUpdate
from plaid.model.link_token_create_request_user import LinkTokenCreateRequestUser
from plaid.model.link_token_get_request import LinkTokenGetRequest
from plaid.model.link_token_transactions import LinkTokenTransactions
from plaid.model.products import Products
from plaid.model.sandbox_item_fire_webhook_request import SandboxItemFireWebhookRequest
from plaid.model.sandbox_public_token_create_request import SandboxPublicTokenCreateRequest
from plaid.model.sandbox_public_token_create_request_options import SandboxPublicTokenCreateRequestOptions
from plaid.model.sandbox_public_token_create_request_options_transactions import (
    SandboxPublicTokenCreateRequestOptionsTransactions,
)
from plaid.model.transactions_refresh_request import TransactionsRefreshRequest
from plaid.model.transactions_sync_request import TransactionsSyncRequest
from plaid.model.transactions_sync_request_options import TransactionsSyncRequestOptions

# Plaid's error body, every field (PlaidError in the spec); `status` only in webhooks.
ERROR_FIELDS = {
    "error_type",
    "error_code",
    "error_message",
    "display_message",
    "request_id",
    "documentation_url",
    "suggested_action",
}


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def expect_error(call, error_type, error_code, status=400):
    """Runs `call`, which must raise Plaid's error `error_code` with a complete body."""
    try:
        call()
    except plaid.ApiException as error:
        body = json.loads(error.body)
        missing = ERROR_FIELDS - body.keys()
        if missing:
            fail(f"{error_code}: error body lacks {sorted(missing)}: {error.body}")
        if (error.status, body["error_type"], body["error_code"]) != (status, error_type, error_code):
            fail(f"expected {status} {error_type}/{error_code}, got {error.status} {error.body}")
        if not body["documentation_url"].startswith("https://plaid.com/docs/errors/"):
            fail(f"documentation_url {body['documentation_url']}")
        return body
    fail(f"expected {error_code}, the call succeeded")


def main():
    base_url, client_id, secret = sys.argv[1:4]
    configuration = plaid.Configuration(host=base_url, api_key={"clientId": client_id, "secret": secret})
    client = plaid_api.PlaidApi(plaid.ApiClient(configuration))
    checked = []

    # /sandbox/public_token/create with every option: webhook, the good login, a date range.
    start, end = datetime.date(2026, 1, 1), datetime.date(2026, 3, 1)
    public = client.sandbox_public_token_create(
        SandboxPublicTokenCreateRequest(
            institution_id="ins_109508",
            initial_products=[Products("transactions")],
            options=SandboxPublicTokenCreateRequestOptions(
                webhook="http://127.0.0.1:9/webhooks",
                override_username="user_good",
                override_password="pass_good",
                transactions=SandboxPublicTokenCreateRequestOptionsTransactions(
                    start_date=start, end_date=end, days_requested=90
                ),
            ),
        )
    )
    exchanged = client.item_public_token_exchange(ItemPublicTokenExchangeRequest(public_token=public.public_token))
    access_token = exchanged.access_token
    item = client.item_get(ItemGetRequest(access_token=access_token)).item
    if item.webhook != "http://127.0.0.1:9/webhooks":
        fail(f"options.webhook not kept: {item.webhook}")
    checked.append("sandbox public token options")

    # /accounts/get and /accounts/balance/get limited to one account.
    accounts = client.accounts_get(AccountsGetRequest(access_token=access_token)).accounts
    first = accounts[0].account_id
    only = client.accounts_get(
        AccountsGetRequest(access_token=access_token, options=AccountsGetRequestOptions(account_ids=[first]))
    ).accounts
    if [a.account_id for a in only] != [first]:
        fail(f"accounts/get options.account_ids ignored: {[a.account_id for a in only]}")
    balances = client.accounts_balance_get(
        AccountsBalanceGetRequest(
            access_token=access_token,
            options=AccountsBalanceGetRequestOptions(
                account_ids=[first],
                min_last_updated_datetime=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
            ),
        )
    ).accounts
    if [a.account_id for a in balances] != [first]:
        fail("accounts/balance/get options.account_ids ignored")
    checked.append("accounts options")

    # /transactions/sync with every option: one account's stream, original descriptions, within
    # the date range the sandbox Item was created with.
    added, cursor = [], ""
    while True:
        page = client.transactions_sync(
            TransactionsSyncRequest(
                access_token=access_token,
                cursor=cursor,
                count=100,
                options=TransactionsSyncRequestOptions(
                    include_original_description=True,
                    include_personal_finance_category=True,
                    include_logo_and_counterparty_beta=True,
                    days_requested=90,
                    account_id=first,
                ),
            )
        )
        added += page.added
        cursor = page.next_cursor
        if not page.has_more:
            break
    if not added:
        fail("sync with options returned nothing")
    if any(t.account_id != first for t in added):
        fail("options.account_id ignored")
    if any(t.original_description is None for t in added):
        fail("include_original_description ignored")
    if any(not (start <= t.date <= end) for t in added):
        fail("transactions outside the sandbox date range")
    plain = client.transactions_sync(TransactionsSyncRequest(access_token=access_token, count=1))
    if plain.added and plain.added[0].original_description is not None:
        fail("original_description sent without include_original_description")
    checked.append(f"sync options ({len(added)} transactions of one account)")

    # Link tokens: update mode with every `update` option, transactions, hosted link; then get.
    link = client.link_token_create(
        LinkTokenCreateRequest(
            client_name="plaidhook",
            language="en",
            country_codes=[CountryCode("US")],
            user=LinkTokenCreateRequestUser(client_user_id="user-options"),
            access_token=access_token,
            webhook="http://127.0.0.1:9/webhooks",
            update=LinkTokenCreateRequestUpdate(account_selection_enabled=True, reauthorization_enabled=False),
            transactions=LinkTokenTransactions(days_requested=120),
            hosted_link=LinkTokenCreateHostedLink(
                completion_redirect_uri="https://app.example/done", url_lifetime_seconds=600, is_mobile_app=False
            ),
        )
    )
    if not link.hosted_link_url.startswith("http"):
        fail(f"no hosted_link_url: {link}")
    lifetime = (link.expiration - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
    if not 500 < lifetime <= 600:
        fail(f"url_lifetime_seconds not applied to the token: {lifetime}")
    got = client.link_token_get(LinkTokenGetRequest(link_token=link.link_token))
    if got.metadata.webhook != "http://127.0.0.1:9/webhooks" or got.link_token != link.link_token:
        fail(f"link/token/get metadata {got.metadata}")
    checked.append("link token options and link/token/get")

    # The other Item endpoints.
    updated = client.item_webhook_update(
        ItemWebhookUpdateRequest(access_token=access_token, webhook="http://127.0.0.1:9/other")
    )
    if updated.item.webhook != "http://127.0.0.1:9/other":
        fail("item/webhook/update ignored")
    client.transactions_refresh(TransactionsRefreshRequest(access_token=access_token))
    fired = client.sandbox_item_fire_webhook(
        SandboxItemFireWebhookRequest(access_token=access_token, webhook_code="DEFAULT_UPDATE")
    )
    if not fired.webhook_fired:
        fail("sandbox/item/fire_webhook did not fire")
    checked.append("webhook update, refresh, fire_webhook")

    # Errors, each with Plaid's complete body.
    expect_error(
        lambda: client.item_get(ItemGetRequest(access_token="access-sandbox-not-a-token")),
        "INVALID_INPUT",
        "INVALID_ACCESS_TOKEN",
    )
    expect_error(
        lambda: client.item_public_token_exchange(ItemPublicTokenExchangeRequest(public_token="public-sandbox-nope")),
        "INVALID_INPUT",
        "INVALID_PUBLIC_TOKEN",
    )
    expect_error(
        lambda: client.transactions_sync(
            TransactionsSyncRequest(
                access_token=access_token, options=TransactionsSyncRequestOptions(account_id="no-such-account")
            )
        ),
        "INVALID_INPUT",
        "INVALID_ACCOUNT_ID",
    )
    expect_error(
        lambda: client.link_token_get(LinkTokenGetRequest(link_token="link-sandbox-00000000-0000-0000-0000-000000000000")),
        "INVALID_INPUT",
        "INVALID_LINK_TOKEN",
    )
    bad_secret = plaid_api.PlaidApi(
        plaid.ApiClient(plaid.Configuration(host=base_url, api_key={"clientId": client_id, "secret": "wrong"}))
    )
    expect_error(
        lambda: bad_secret.item_get(ItemGetRequest(access_token=access_token)),
        "INVALID_INPUT",
        "INVALID_API_KEYS",
    )
    checked.append("5 error bodies")

    # Removal: the token is dead afterwards.
    client.item_remove(ItemRemoveRequest(access_token=access_token))
    expect_error(
        lambda: client.item_get(ItemGetRequest(access_token=access_token)),
        "ITEM_ERROR",
        "ITEM_NOT_FOUND",
    )
    checked.append("item/remove")

    print("OK: " + "; ".join(checked))


if __name__ == "__main__":
    main()
