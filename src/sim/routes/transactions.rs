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

    let options = req.options.unwrap_or_default();
    let item = state
        .items
        .get_mut(&item_id)
        .ok_or_else(errors::item_not_found)?;
    // options.account_id: "an error will be returned if a provided account_id is not
    // associated with the Item" (spec); INVALID_ACCOUNT_ID is Plaid's code for an account_id
    // that "is invalid or does not exist".
    let account = match &options.account_id {
        None => None,
        Some(wanted) => Some(
            item.data
                .accounts
                .iter()
                .position(|a| &a.account_id == wanted)
                .ok_or_else(errors::invalid_account_id)? as u8,
        ),
    };
    // Each account_id is "a separate incremental update stream -- and therefore a separate
    // cursor" (spec): cursors are bound to their stream, so one is refused on another.
    let stream = match &options.account_id {
        None => item_id.clone(),
        Some(account_id) => format!("{item_id}/{account_id}"),
    };
    item.sync_called = true;
    if item.phase == Phase::NotReady {
        return Ok(TransactionsSyncResponse {
            transactions_update_status: TransactionsUpdateStatus::NotReady,
            accounts: render::item_accounts(item),
            added: Vec::new(),
            modified: Vec::new(),
            removed: Vec::new(),
            next_cursor: Cursor::start(),
            has_more: false,
            request_id: request_id.to_owned(),
        });
    }
    // The cursor "now" fast-forwards: no transactions, and a cursor at the latest update
    // (spec, TransactionsSyncRequest.cursor; for migrating from /transactions/get).
    if req.cursor.as_ref().is_some_and(|c| c.as_str() == "now") {
        return Ok(TransactionsSyncResponse {
            transactions_update_status: item.phase.status(),
            accounts: render::item_accounts(item),
            added: Vec::new(),
            modified: Vec::new(),
            removed: Vec::new(),
            next_cursor: Cursor::new(SyncCursor::at(item.visible_version()).encode(&stream)),
            has_more: false,
            request_id: request_id.to_owned(),
        });
    }
    let cursor = match req.cursor.as_ref().filter(|c| !c.is_start()) {
        None => None,
        Some(text) => Some(SyncCursor::decode(text.as_str(), &stream).ok_or_else(invalid_cursor)?),
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
        account,
        &mut item.update_cache,
    )
    .map_err(|refusal| match refusal {
        SyncRefusal::InvalidCursor => invalid_cursor(),
        SyncRefusal::MutationDuringPagination => errors::mutation_during_pagination(),
    })?;
    let data = &item.data;
    let mut response = TransactionsSyncResponse {
        transactions_update_status: status,
        accounts: render::item_accounts(item),
        added: Vec::new(),
        modified: Vec::new(),
        removed: Vec::new(),
        next_cursor: Cursor::new(page.next.encode(&stream)),
        has_more: page.has_more,
        request_id: request_id.to_owned(),
    };
    // original_description is null unless asked for (spec: include_original_description,
    // default false); the simulator's raw description is the bank's text, `name`.
    let include_original = options.include_original_description == Some(true);
    let transaction = |txn| {
        let mut rendered = render::transaction(data, txn);
        if include_original {
            rendered.original_description = Some(rendered.name.clone());
        }
        rendered
    };
    for (kind, index) in page.entries {
        let txn = &data.txns[index as usize];
        match kind {
            ChangeKind::Added => response.added.push(transaction(txn)),
            ChangeKind::Modified => response.modified.push(transaction(txn)),
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
