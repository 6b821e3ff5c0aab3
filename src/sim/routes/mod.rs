//! The Plaid API routes: each path with its accepted fields and its handler. Handlers live in
//! the modules below, grouped by Plaid's API sections.

mod items;
mod link;
mod sandbox;
mod transactions;

use super::request::{handle, not_found, Endpoint};
use super::Sim;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;

macro_rules! routes {
    ($router:expr, $( $path:literal => $handler:path, fields: [$($field:literal),*], required: [$($req:literal),*]; )*) => {{
        let mut router = $router;
        $(
            router = router.route($path, post(|State(sim): State<Sim>, headers: HeaderMap, body: Bytes| async move {
                static ENDPOINT: Endpoint = Endpoint { path: $path, fields: &[$($field),*], required: &[$($req),*] };
                handle(sim, &ENDPOINT, headers, body, $handler).await
            }).fallback(not_found));
        )*
        router
    }};
}

/// Plaid's endpoints this simulator serves, as `GET /` lists them: keep it beside the router
/// below (the `sim_restart` suite checks that each is served).
pub const ENDPOINTS: &[&str] = &[
    "/link/token/create",
    "/link/token/get",
    "/item/public_token/exchange",
    "/item/get",
    "/item/remove",
    "/item/webhook/update",
    "/accounts/get",
    "/accounts/balance/get",
    "/transactions/sync",
    "/transactions/refresh",
    "/webhook_verification_key/get",
    "/sandbox/public_token/create",
    "/sandbox/item/reset_login",
    "/sandbox/item/fire_webhook",
];

pub fn plaid_router() -> Router<Sim> {
    routes!(Router::new(),
        "/link/token/create" => link::link_token_create,
            fields: ["client_name", "language", "country_codes", "user", "user_id", "products",
                "required_if_supported_products", "optional_products", "additional_consented_products",
                "webhook", "access_token", "access_tokens", "link_customization_name", "appearance_mode",
                "redirect_uri", "android_package_name", "institution_data", "card_switch", "account_filters",
                "eu_config", "institution_id", "payment_configuration", "payment_initiation", "employment",
                "income_verification", "base_report", "credit_partner_insights", "cra_options",
                "consumer_report_permissible_purpose", "auth", "transfer", "update", "identity_verification",
                "statements", "third_party_user_token", "investments", "investments_auth", "hosted_link",
                "transactions", "cashflow_report", "cra_enabled", "identity", "financekit_supported",
                "enable_multi_item_link", "user_token"],
            required: ["client_name", "language", "country_codes"];
        "/link/token/get" => link::link_token_get, fields: ["link_token"], required: ["link_token"];
        "/item/public_token/exchange" => link::public_token_exchange,
            fields: ["public_token"], required: ["public_token"];
        "/item/get" => items::item_get, fields: ["access_token"], required: ["access_token"];
        "/item/remove" => items::item_remove,
            fields: ["access_token", "reason_code", "reason_note"], required: ["access_token"];
        "/item/webhook/update" => items::item_webhook_update,
            fields: ["access_token", "webhook"], required: ["access_token"];
        "/accounts/get" => items::accounts_get, fields: ["access_token", "options"], required: ["access_token"];
        "/accounts/balance/get" => items::accounts_balance_get,
            fields: ["access_token", "options"], required: ["access_token"];
        "/transactions/sync" => transactions::transactions_sync,
            fields: ["access_token", "cursor", "count", "options"], required: ["access_token"];
        "/transactions/refresh" => transactions::transactions_refresh,
            fields: ["access_token"], required: ["access_token"];
        "/webhook_verification_key/get" => transactions::webhook_verification_key_get,
            fields: ["key_id"], required: ["key_id"];
        "/sandbox/public_token/create" => sandbox::public_token_create,
            fields: ["institution_id", "initial_products", "options", "user_token", "user_id"],
            required: ["institution_id", "initial_products"];
        "/sandbox/item/reset_login" => sandbox::reset_login, fields: ["access_token"], required: ["access_token"];
        "/sandbox/item/fire_webhook" => sandbox::fire_webhook,
            fields: ["access_token", "webhook_type", "webhook_code"], required: ["access_token", "webhook_code"];
    )
    .fallback(not_found)
}
