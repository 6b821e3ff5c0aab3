"""Drive the Plaid simulator with Plaid's official Python client (plaid-python), unchanged.

Usage: python3 flow.py <base_url> [client_id] [secret]

Runs link (link token + sandbox public token) -> exchange -> item/get -> accounts -> sync
(all pages) -> reset_login, and checks that the Item's calls then fail with
ITEM_LOGIN_REQUIRED. Exits 0 on success, 1 with a message on any mismatch.
"""

import json
import sys

import plaid
from plaid.api import plaid_api
from plaid.model.accounts_get_request import AccountsGetRequest
from plaid.model.country_code import CountryCode
from plaid.model.item_get_request import ItemGetRequest
from plaid.model.item_public_token_exchange_request import ItemPublicTokenExchangeRequest
from plaid.model.link_token_create_request import LinkTokenCreateRequest
from plaid.model.link_token_create_request_user import LinkTokenCreateRequestUser
from plaid.model.products import Products
from plaid.model.sandbox_item_reset_login_request import SandboxItemResetLoginRequest
from plaid.model.sandbox_public_token_create_request import SandboxPublicTokenCreateRequest
from plaid.model.transactions_sync_request import TransactionsSyncRequest
from plaid.model.webhook_verification_key_get_request import WebhookVerificationKeyGetRequest


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def main():
    base_url = sys.argv[1]
    client_id = sys.argv[2] if len(sys.argv) > 2 else "plaidhook-sim-client"
    secret = sys.argv[3] if len(sys.argv) > 3 else "plaidhook-sim-secret"
    configuration = plaid.Configuration(host=base_url, api_key={"clientId": client_id, "secret": secret})
    client = plaid_api.PlaidApi(plaid.ApiClient(configuration))

    link = client.link_token_create(
        LinkTokenCreateRequest(
            client_name="plaidhook",
            language="en",
            country_codes=[CountryCode("US")],
            user=LinkTokenCreateRequestUser(client_user_id="user-1"),
            products=[Products("transactions")],
        )
    )
    if not link.link_token.startswith("link-"):
        fail(f"unexpected link token {link.link_token}")

    public = client.sandbox_public_token_create(
        SandboxPublicTokenCreateRequest(institution_id="ins_109508", initial_products=[Products("transactions")])
    )
    exchanged = client.item_public_token_exchange(ItemPublicTokenExchangeRequest(public_token=public.public_token))
    access_token = exchanged.access_token

    item = client.item_get(ItemGetRequest(access_token=access_token))
    if item.item.item_id != exchanged.item_id:
        fail("item/get returned another item")
    accounts = client.accounts_get(AccountsGetRequest(access_token=access_token))
    if len(accounts.accounts) == 0:
        fail("no accounts")

    added, cursor, pages = 0, "", 0
    while True:
        page = client.transactions_sync(TransactionsSyncRequest(access_token=access_token, cursor=cursor, count=250))
        added += len(page.added)
        cursor = page.next_cursor
        pages += 1
        if not page.has_more:
            break
    if added == 0:
        fail("sync returned no transactions")

    # A key id from the simulator's own webhook signature would be used here; an unknown one
    # must come back as Plaid's INVALID_WEBHOOK_VERIFICATION_KEY_ID.
    try:
        client.webhook_verification_key_get(WebhookVerificationKeyGetRequest(key_id="unknown"))
        fail("an unknown key id was accepted")
    except plaid.ApiException as error:
        if json.loads(error.body)["error_code"] != "INVALID_WEBHOOK_VERIFICATION_KEY_ID":
            fail(f"unexpected error {error.body}")

    reset = client.sandbox_item_reset_login(SandboxItemResetLoginRequest(access_token=access_token))
    if not reset.reset_login:
        fail("reset_login did not report success")
    try:
        client.transactions_sync(TransactionsSyncRequest(access_token=access_token, cursor=cursor))
        fail("sync succeeded on an Item that needs login")
    except plaid.ApiException as error:
        body = json.loads(error.body)
        if error.status != 400 or body["error_code"] != "ITEM_LOGIN_REQUIRED" or body["error_type"] != "ITEM_ERROR":
            fail(f"unexpected error {error.status} {error.body}")

    print(f"OK: item {exchanged.item_id}, {added} transactions in {pages} pages, ITEM_LOGIN_REQUIRED after reset_login")


if __name__ == "__main__":
    main()
