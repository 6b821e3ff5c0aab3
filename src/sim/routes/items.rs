//! Item and account endpoints: `/item/get`, `/item/remove`, `/item/webhook/update`,
//! `/accounts/get`, `/accounts/balance/get`.

use crate::plaid::item::{LastWebhook, ProductStatus};
use crate::plaid::{
    AccessTokenRequest, AccountsGetRequest, AccountsGetResponse, ItemGetResponse,
    ItemRemoveRequest, ItemStatus, ItemWebhookUpdateRequest, ItemWebhookUpdateResponse,
    ItemWithConsentFields, PlaidError, RequestIdResponse,
};
use crate::sim::bodies;
use crate::sim::errors;
use crate::sim::render;
use crate::sim::state::SimState;

pub fn item_get(
    state: &mut SimState,
    req: AccessTokenRequest,
    request_id: &str,
) -> Result<ItemGetResponse, PlaidError> {
    let item_id = state
        .item_by_token(req.access_token.expose_secret())?
        .item_id
        .clone();
    state.rate_limit("/item/get", &item_id)?;
    let item = &state.items[&item_id];
    Ok(ItemGetResponse {
        item: ItemWithConsentFields {
            item: render::item(item),
            created_at: Some(item.created_at),
            consented_use_cases: vec!["Track and manage your finances".to_owned()],
            consented_data_scopes: vec![
                "account_balance_info".to_owned(),
                "transactions".to_owned(),
            ],
        },
        status: Some(ItemStatus {
            investments: None,
            transactions: Some(ProductStatus {
                last_successful_update: Some(item.last_successful_update),
                last_failed_update: item.last_failed_update,
            }),
            last_webhook: item
                .last_webhook
                .as_ref()
                .map(|(sent_at, code)| LastWebhook {
                    sent_at: Some(*sent_at),
                    code_sent: Some(code.clone()),
                }),
        }),
        request_id: request_id.to_owned(),
    })
}

pub fn item_remove(
    state: &mut SimState,
    req: ItemRemoveRequest,
    request_id: &str,
) -> Result<RequestIdResponse, PlaidError> {
    if req
        .reason_note
        .as_ref()
        .is_some_and(|note| note.len() > 512)
    {
        return Err(errors::invalid_field(
            "reason_note must be at most 512 characters",
        ));
    }
    let item = state.item_by_token(req.access_token.expose_secret())?;
    item.removed = true;
    item.webhook = None;
    Ok(RequestIdResponse {
        request_id: request_id.to_owned(),
    })
}

pub fn item_webhook_update(
    state: &mut SimState,
    req: ItemWebhookUpdateRequest,
    request_id: &str,
) -> Result<ItemWebhookUpdateResponse, PlaidError> {
    let webhook = req.webhook.filter(|url| !url.is_empty());
    if let Some(url) = &webhook {
        let valid = reqwest::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !valid {
            return Err(errors::invalid_field("webhook must be a valid URL"));
        }
    }
    let item = state.item_by_token(req.access_token.expose_secret())?;
    item.webhook = webhook.clone();
    let item_id = item.item_id.clone();
    if let Some(url) = webhook {
        state.emit(
            &item_id,
            |ctx| bodies::webhook_update_acknowledged(ctx, &url),
            ("ITEM", "WEBHOOK_UPDATE_ACKNOWLEDGED"),
        );
    }
    let item = &state.items[&item_id];
    Ok(ItemWebhookUpdateResponse {
        item: render::item(item),
        request_id: request_id.to_owned(),
    })
}

fn accounts(
    state: &mut SimState,
    req: &AccountsGetRequest,
    request_id: &str,
) -> Result<AccountsGetResponse, PlaidError> {
    let item = state.healthy_item_by_token(req.access_token.expose_secret())?;
    let mut accounts = render::item_accounts(item);
    if let Some(wanted) = req.options.as_ref().and_then(|o| o.account_ids.as_ref()) {
        if wanted
            .iter()
            .any(|id| accounts.iter().all(|a| a.account_id.as_str() != id))
        {
            return Err(errors::invalid_account_id());
        }
        accounts.retain(|a| wanted.iter().any(|id| id == a.account_id.as_str()));
    }
    Ok(AccountsGetResponse {
        accounts,
        item: render::item(item),
        request_id: request_id.to_owned(),
    })
}

/// An accounts answer with the configured extra fields in every account.
fn with_extra_fields(state: &SimState, response: AccountsGetResponse) -> serde_json::Value {
    let mut value = serde_json::to_value(response).expect("a response serialises");
    render::add_fields(
        &mut value,
        &["accounts"],
        &state.config.account_extra_fields,
    );
    value
}

pub fn accounts_get(
    state: &mut SimState,
    req: AccountsGetRequest,
    request_id: &str,
) -> Result<serde_json::Value, PlaidError> {
    let item_id = state
        .healthy_item_by_token(req.access_token.expose_secret())?
        .item_id
        .clone();
    state.rate_limit("/accounts/get", &item_id)?;
    let response = accounts(state, &req, request_id)?;
    Ok(with_extra_fields(state, response))
}

pub fn accounts_balance_get(
    state: &mut SimState,
    req: AccountsGetRequest,
    request_id: &str,
) -> Result<serde_json::Value, PlaidError> {
    let item_id = state
        .healthy_item_by_token(req.access_token.expose_secret())?
        .item_id
        .clone();
    state.rate_limit("/accounts/balance/get", &item_id)?;
    // Real-time balances, except at institutions that cannot give them (`render::item_accounts`
    // reports when those were last updated).
    let response = accounts(state, &req, request_id)?;
    Ok(with_extra_fields(state, response))
}
