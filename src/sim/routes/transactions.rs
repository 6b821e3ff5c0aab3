//! `/transactions/sync`, `/transactions/refresh` and `/webhook_verification_key/get`.

use crate::plaid::{
    AccessTokenRequest, Cursor, PlaidError, RequestIdResponse, TransactionsSyncRequest,
    TransactionsSyncResponse, TransactionsUpdateStatus, WebhookVerificationKeyGetRequest,
    WebhookVerificationKeyGetResponse,
};
use crate::sim::errors;
use crate::sim::render;
use crate::sim::state::{Phase, SimState};
use crate::sim::sync::{self, ChangeKind, SyncCursor, SyncRefusal};

/// `/transactions/sync`, with the configured extra fields in every transaction and account.
pub fn transactions_sync(
    state: &mut SimState,
    req: TransactionsSyncRequest,
    request_id: &str,
) -> Result<serde_json::Value, PlaidError> {
    let response = sync_response(state, req, request_id)?;
    let mut value = serde_json::to_value(response).expect("a response serialises");
    let config = &state.config;
    render::add_fields(
        &mut value,
        &["added", "modified"],
        &config.transaction_extra_fields,
    );
    render::add_fields(&mut value, &["accounts"], &config.account_extra_fields);
    Ok(value)
}

fn sync_response(
    state: &mut SimState,
    req: TransactionsSyncRequest,
    request_id: &str,
) -> Result<TransactionsSyncResponse, PlaidError> {
    let count = req.count.unwrap_or(100);
    if !(1..=500).contains(&count) {
        return Err(errors::invalid_field(
            "count must be an integer between 1 and 500",
        ));
    }
    if let Some(days) = req.options.as_ref().and_then(|o| o.days_requested) {
        if !(1..=730).contains(&days) {
            return Err(errors::invalid_field(
                "options.days_requested must be between 1 and 730",
            ));
        }
    }
    let item_id = state
        .healthy_item_by_token(req.access_token.expose_secret())?
        .item_id
        .clone();
    state.rate_limit("/transactions/sync", &item_id)?;

    let item = state
        .items
        .get_mut(&item_id)
        .ok_or_else(errors::item_not_found)?;
    item.sync_called = true;
    if item.phase == Phase::NotReady {
        return Ok(TransactionsSyncResponse {
            transactions_update_status: TransactionsUpdateStatus::NotReady,
            accounts: render::accounts(&item.data),
            added: Vec::new(),
            modified: Vec::new(),
            removed: Vec::new(),
            next_cursor: Cursor::start(),
            has_more: false,
            request_id: request_id.to_owned(),
        });
    }
    let cursor = match req.cursor.as_ref().filter(|c| !c.is_start()) {
        None => None,
        Some(text) => Some(SyncCursor::decode(text.as_str(), &item_id).ok_or_else(invalid_cursor)?),
    };
    if cursor.is_some_and(|c| c.is_mid_update())
        && std::mem::take(&mut item.mutate_during_pagination)
    {
        let since = item.data.version();
        item.data.add_one();
        state.data_changed(&item_id, since);
    }
    let item = state
        .items
        .get_mut(&item_id)
        .ok_or_else(errors::item_not_found)?;
    let visible = item.visible_version();
    let status = item.phase.status();
    let page = sync::page(
        &item.data,
        visible,
        cursor,
        count as usize,
        &mut item.update_cache,
    )
    .map_err(|refusal| match refusal {
        SyncRefusal::InvalidCursor => invalid_cursor(),
        SyncRefusal::MutationDuringPagination => errors::mutation_during_pagination(),
    })?;
    let data = &item.data;
    let mut response = TransactionsSyncResponse {
        transactions_update_status: status,
        accounts: render::accounts(data),
        added: Vec::new(),
        modified: Vec::new(),
        removed: Vec::new(),
        next_cursor: Cursor::new(page.next.encode(&item_id)),
        has_more: page.has_more,
        request_id: request_id.to_owned(),
    };
    for (kind, index) in page.entries {
        let txn = &data.txns[index as usize];
        match kind {
            ChangeKind::Added => response.added.push(render::transaction(data, txn)),
            ChangeKind::Modified => response.modified.push(render::transaction(data, txn)),
            ChangeKind::Removed => response.removed.push(render::removed(data, txn)),
        }
    }
    Ok(response)
}

fn invalid_cursor() -> PlaidError {
    errors::invalid_field("cursor is not valid: use the next_cursor of a previous /transactions/sync response for this item")
}

pub fn transactions_refresh(
    state: &mut SimState,
    req: AccessTokenRequest,
    request_id: &str,
) -> Result<RequestIdResponse, PlaidError> {
    let item_id = state
        .healthy_item_by_token(req.access_token.expose_secret())?
        .item_id
        .clone();
    state.rate_limit("/transactions/refresh", &item_id)?;
    let item = state
        .items
        .get_mut(&item_id)
        .ok_or_else(errors::item_not_found)?;
    let since = item.data.version();
    item.data.add_one();
    state.data_changed(&item_id, since);
    Ok(RequestIdResponse {
        request_id: request_id.to_owned(),
    })
}

pub fn webhook_verification_key_get(
    state: &mut SimState,
    req: WebhookVerificationKeyGetRequest,
    request_id: &str,
) -> Result<WebhookVerificationKeyGetResponse, PlaidError> {
    let key = state
        .keys
        .get(&req.key_id)
        .ok_or_else(errors::invalid_key_id)?;
    Ok(WebhookVerificationKeyGetResponse {
        key: key.public_jwk(),
        request_id: request_id.to_owned(),
    })
}
