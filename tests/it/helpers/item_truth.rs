//! Item-health tests that choose the order: webhooks signed by the simulator's key posted
//! straight to the ingress (the simulator's own deliveries are concurrent), and what
//! `/item/get` reports set without the simulator sending anything.

use serde_json::Value;
use testkit::api::Harness;

/// Posts `body` signed by the simulator's key to the ingress; it must be answered 200.
pub async fn deliver(h: &Harness, body: Value) {
    let signed = h.app.sim().signed_webhook(&body);
    let response = h
        .app
        .http
        .post(h.app.public_url("/webhooks/plaid"))
        .header("Plaid-Verification", signed.plaid_verification)
        .body(signed.body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// Sets whether `/item/get` reports ITEM_LOGIN_REQUIRED for the Item, without a webhook.
pub fn set_login_required(h: &Harness, plaid_item_id: &str, broken: bool) {
    use plaidhook::plaid::{ErrorCode, ErrorType, PlaidError};
    h.app.sim().with_state(|s| {
        s.items.get_mut(plaid_item_id).unwrap().error = broken.then(|| {
            PlaidError::new(
                ErrorType::ItemError,
                ErrorCode::ItemLoginRequired,
                "relogin",
            )
            .with_status(400)
        });
    });
}
