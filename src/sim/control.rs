//! The control API under `/sim/…`: what a test, a demo or a load test needs to steer the
//! simulated Plaid — create Items directly, finish Link and update mode as the user would,
//! move the bank forward, break things (rate limits, 5xx, latency, mutation during pagination,
//! duplicate and reordered webhooks, key rotation) and read the ground truth back.
//!
//! It has no authentication: it is a local development tool, like the rest of the simulator.
//! `GET /` lists these routes (from [`CONTROL_ROUTES`], which the README's table follows) and
//! how to link an Item, so nobody needs the source to find them.

use super::render;
use super::state::{InjectedFault, NewItem, SimState};
use super::Sim;
use crate::plaid::{ErrorCode, ErrorType, PlaidError, Product};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

/// Every control route: method, path, what it does. Served by `GET /`.
pub const CONTROL_ROUTES: &[(&str, &str, &str)] = &[
    ("GET", "/", "this index"),
    ("POST", "/sim/link/complete", "finish Link as the user would: {link_token, institution_id?} -> {item_id, public_token} (update-mode token: the Item repaired in the app, no webhook)"),
    ("GET", "/sim/config", "the simulator's settings"),
    ("POST", "/sim/config", "change settings now (faults, limits, webhook timing), e.g. {\"latency_ms\":200}; not kept across restarts"),
    ("GET", "/sim/items", "every Item: id, access token, webhook, error, data version"),
    ("POST", "/sim/items", "create an Item directly, no Link: {webhook?, transactions?, institution_id?, days_requested?} -> {item_id, access_token}"),
    ("GET", "/sim/items/{item_id}", "one Item's summary"),
    ("GET", "/sim/items/{item_id}/transactions", "the Item's ground truth: accounts and current transactions"),
    ("POST", "/sim/items/{item_id}/transactions", "one new transaction today, the smallest change a bank makes (SYNC_UPDATES_AVAILABLE follows once sync was called) -> {transaction_id}"),
    ("POST", "/sim/items/{item_id}/advance", "move the bank forward: {days} (SYNC_UPDATES_AVAILABLE follows once sync was called)"),
    ("POST", "/sim/items/{item_id}/reset_login", "ITEM_LOGIN_REQUIRED, ITEM ERROR webhook sent"),
    ("POST", "/sim/items/{item_id}/error", "any Item error: {error_code, error_type?, error_message?}"),
    ("POST", "/sim/items/{item_id}/complete_update_mode", "the user repaired the Item through update mode in the app: error cleared, no webhook (as at Plaid)"),
    ("POST", "/sim/items/{item_id}/login_repaired", "the Item recovered outside the app: error cleared, LOGIN_REPAIRED sent"),
    ("POST", "/sim/items/{item_id}/ready", "finish the Item's first fetch now: initial and historical updates, with their webhooks"),
    ("POST", "/sim/items/{item_id}/mutate_during_pagination", "the next mid-pagination /transactions/sync fails with TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION"),
    ("POST", "/sim/items/{item_id}/consent_expiring", "consent expires in 7 days: PENDING_EXPIRATION (European institution) or PENDING_DISCONNECT INSTITUTION_TOKEN_EXPIRATION (US/CA)"),
    ("POST", "/sim/items/{item_id}/pending_expiration", "consent expires in 7 days, PENDING_EXPIRATION sent (European institutions only, e.g. ins_117650; 409 otherwise)"),
    ("POST", "/sim/items/{item_id}/pending_disconnect", "PENDING_DISCONNECT in 7 days: {reason?} (INSTITUTION_TOKEN_EXPIRATION by default, or INSTITUTION_MIGRATION)"),
    ("POST", "/sim/faults", "queue a Plaid error: {error_type, error_code, endpoint?, item_id?, status?, count?}"),
    ("DELETE", "/sim/faults", "clear queued faults and rate-limit windows"),
    ("GET", "/sim/keys", "webhook signing keys (JWKs), expired ones included"),
    ("POST", "/sim/keys/rotate", "expire the current signing key, sign with a new one"),
    ("GET", "/sim/webhooks", "every webhook delivery attempt (this run)"),
    ("POST", "/sim/webhooks/flush", "release webhooks held by webhook_reorder_window"),
];

pub fn control_router() -> Router<Sim> {
    Router::new()
        .route("/", get(index))
        .route("/sim/config", get(get_config).post(update_config))
        .route("/sim/items", get(list_items).post(create_item))
        .route("/sim/items/{item_id}", get(item_detail))
        .route(
            "/sim/items/{item_id}/transactions",
            get(ground_truth).post(add_transaction),
        )
        .route("/sim/items/{item_id}/advance", post(advance))
        .route("/sim/items/{item_id}/reset_login", post(reset_login))
        .route("/sim/items/{item_id}/error", post(set_error))
        .route(
            "/sim/items/{item_id}/complete_update_mode",
            post(complete_update_mode),
        )
        .route("/sim/items/{item_id}/login_repaired", post(login_repaired))
        .route("/sim/items/{item_id}/ready", post(make_ready))
        .route(
            "/sim/items/{item_id}/mutate_during_pagination",
            post(arm_mutation),
        )
        .route(
            "/sim/items/{item_id}/pending_expiration",
            post(pending_expiration),
        )
        .route(
            "/sim/items/{item_id}/consent_expiring",
            post(consent_expiring),
        )
        .route(
            "/sim/items/{item_id}/pending_disconnect",
            post(pending_disconnect),
        )
        .route("/sim/link/complete", post(complete_link))
        .route("/sim/faults", post(inject_fault).delete(clear_faults))
        .route("/sim/keys", get(list_keys))
        .route("/sim/keys/rotate", post(rotate_key))
        .route("/sim/webhooks", get(deliveries))
        .route("/sim/webhooks/flush", post(flush_webhooks))
}

/// What this server is and how to use it, for whoever opens it in a browser or with curl.
async fn index() -> Response {
    let routes: Vec<Value> = CONTROL_ROUTES
        .iter()
        .map(|(method, path, what)| json!({"method": method, "path": path, "what": what}))
        .collect();
    Json(json!({
        "service": "plaidhook's Plaid simulator",
        "plaid_api": {
            "what": "Plaid's API (POST, JSON, client_id and secret as sim.client_id / sim.secret, see GET /sim/config); point a Plaid client's base URL at this server",
            "endpoints": super::routes::ENDPOINTS,
        },
        "link_an_item": [
            "create a Link token: plaidhook's POST /api/v1/link/token, or Plaid's POST /link/token/create here",
            "finish Link as the user: POST /sim/link/complete {\"link_token\": \"link-...\"} -> public_token (or Plaid's POST /sandbox/public_token/create, or Hosted Link: open the token's hosted_link_url)",
            "exchange the public token through plaidhook: POST /api/v1/link/exchange {\"public_token\", \"client_user_id\"}",
        ],
        "hosted_link": {
            "what": "Plaid's Hosted Link: /link/token/create with a hosted_link object returns hosted_link_url, a page this server serves (Plaid serves it from its own host)",
            "page": "GET /hl/{id}: the institution and a login form (inputs username, password; button #submit; #exit to leave)",
            "credentials": "user_good / pass_good; anything else is INVALID_CREDENTIALS and the form again",
            "outcome": "a new Item (or update mode's repair, no LOGIN_REPAIRED), then a 303 to completion_redirect_uri or a done page; LINK webhooks ITEM_ADD_RESULT (new Items), EVENTS, SESSION_FINISHED to the token's webhook; /link/token/get reports the session",
        },
        "control_api": routes,
    }))
    .into_response()
}

fn not_found(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": format!("{what} not found")})),
    )
        .into_response()
}

fn bad_request(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": message.into()})),
    )
        .into_response()
}

async fn get_config(State(sim): State<Sim>) -> Response {
    Json(sim.config()).into_response()
}

/// Merge the given fields into the current settings.
async fn update_config(State(sim): State<Sim>, Json(patch): Json<Value>) -> Response {
    let Value::Object(patch) = patch else {
        return bad_request("expected a JSON object");
    };
    let mut current = serde_json::to_value(sim.config()).expect("config serialises");
    if let Some(object) = current.as_object_mut() {
        object.extend(patch);
    }
    match serde_json::from_value::<super::SimConfig>(current) {
        Ok(config) => match config.validate() {
            Ok(()) => {
                sim.with_state(|s| s.config = config.clone());
                Json(config).into_response()
            }
            Err(e) => bad_request(e.to_string()),
        },
        Err(e) => bad_request(e.to_string()),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CreateItem {
    institution_id: Option<String>,
    webhook: Option<String>,
    products: Vec<Product>,
    days_requested: Option<u32>,
    transactions: Option<usize>,
}

async fn create_item(State(sim): State<Sim>, body: Option<Json<CreateItem>>) -> Response {
    let request = body.map(|Json(b)| b).unwrap_or_default();
    let (item_id, access_token) = sim.create_item(NewItem {
        institution_id: request.institution_id,
        webhook: request.webhook,
        products: request.products,
        days_requested: request.days_requested,
        transactions: request.transactions,
        history_ends: None,
    });
    Json(json!({"item_id": item_id, "access_token": access_token.expose_secret()})).into_response()
}

fn summary(state: &SimState, item_id: &str) -> Option<Value> {
    let item = state.items.get(item_id)?;
    Some(json!({
        "item_id": item.item_id,
        "access_token": item.access_token,
        "institution_id": item.institution_id,
        "webhook": item.webhook,
        "error": item.error,
        "removed": item.removed,
        "transactions_update_status": item.phase.status(),
        "sync_called": item.sync_called,
        "version": item.data.version(),
        "bank_date": item.data.today,
        "transactions": item.data.live().count(),
    }))
}

async fn list_items(State(sim): State<Sim>) -> Response {
    let items: Vec<Value> =
        sim.with_state(|s| s.order.iter().filter_map(|id| summary(s, id)).collect());
    Json(json!({ "items": items })).into_response()
}

async fn item_detail(State(sim): State<Sim>, Path(item_id): Path<String>) -> Response {
    match sim.with_state(|s| summary(s, &item_id)) {
        Some(summary) => Json(summary).into_response(),
        None => not_found("item"),
    }
}

/// The Item's current transaction set and accounts: what a correct sync ends up with.
async fn ground_truth(State(sim): State<Sim>, Path(item_id): Path<String>) -> Response {
    let truth = sim.with_state(|s| {
        let item = s.items.get(&item_id)?;
        let transactions: Vec<_> = item.data.live().map(|t| render::transaction(&item.data, t)).collect();
        Some(json!({"item_id": item_id, "accounts": render::accounts(&item.data), "transactions": transactions}))
    });
    truth.map_or_else(|| not_found("item"), |t| Json(t).into_response())
}

#[derive(Deserialize)]
struct Advance {
    days: u32,
}

async fn advance(
    State(sim): State<Sim>,
    Path(item_id): Path<String>,
    Json(body): Json<Advance>,
) -> Response {
    match sim.advance(&item_id, body.days) {
        Some(counts) => Json(json!({"item_id": item_id, "changes": counts, "version": sim.with_state(|s| s.items[&item_id].data.version())})).into_response(),
        None => not_found("item"),
    }
}

async fn add_transaction(State(sim): State<Sim>, Path(item_id): Path<String>) -> Response {
    match sim.with_state(|s| s.add_transaction(&item_id)) {
        Some(transaction_id) => {
            Json(json!({"item_id": item_id, "transaction_id": transaction_id})).into_response()
        }
        None => not_found("item"),
    }
}

async fn reset_login(State(sim): State<Sim>, Path(item_id): Path<String>) -> Response {
    ok_or_404(sim.reset_login(&item_id))
}

#[derive(Deserialize)]
struct SetError {
    error_code: String,
    #[serde(default)]
    error_type: Option<String>,
    #[serde(default)]
    error_message: Option<String>,
}

/// Put the Item into any ITEM_ERROR (for example USER_PERMISSION_REVOKED) and send ITEM ERROR.
async fn set_error(
    State(sim): State<Sim>,
    Path(item_id): Path<String>,
    Json(body): Json<SetError>,
) -> Response {
    let error = PlaidError::new(
        ErrorType::from(body.error_type.unwrap_or_else(|| "ITEM_ERROR".to_owned())),
        ErrorCode::from(body.error_code),
        body.error_message
            .unwrap_or_else(|| "the item is in an error state".to_owned()),
    );
    ok_or_404(sim.with_state(|s| s.set_error(&item_id, error)))
}

async fn complete_update_mode(State(sim): State<Sim>, Path(item_id): Path<String>) -> Response {
    ok_or_404(sim.complete_update_mode(&item_id))
}

async fn make_ready(State(sim): State<Sim>, Path(item_id): Path<String>) -> Response {
    ok_or_404(sim.set_ready(&item_id))
}

async fn arm_mutation(State(sim): State<Sim>, Path(item_id): Path<String>) -> Response {
    ok_or_404(sim.arm_mutation_during_pagination(&item_id))
}

/// PENDING_EXPIRATION, which Plaid sends only for European institutions.
async fn pending_expiration(State(sim): State<Sim>, Path(item_id): Path<String>) -> Response {
    let region = sim.with_state(|s| {
        s.items
            .get(&item_id)
            .map(|item| super::catalog::institution_region(&item.institution_id))
    });
    match region {
        None => not_found("item"),
        Some(super::catalog::Region::NorthAmerica) => (
            StatusCode::CONFLICT,
            Json(json!({"error": "Plaid sends PENDING_EXPIRATION only for European institutions (e.g. ins_117650); a US or Canadian Item's consent expiry is PENDING_DISCONNECT (POST .../consent_expiring or .../pending_disconnect)"})),
        )
            .into_response(),
        Some(super::catalog::Region::Europe) => consent_expiring(State(sim), Path(item_id)).await,
    }
}

/// Consent expires in 7 days, announced as Plaid does for the Item's region.
async fn consent_expiring(State(sim): State<Sim>, Path(item_id): Path<String>) -> Response {
    match sim.consent_expiring(&item_id) {
        Some(code) => Json(json!({"ok": true, "webhook_code": code})).into_response(),
        None => not_found("item"),
    }
}

#[derive(Debug, Default, Deserialize)]
struct PendingDisconnect {
    reason: Option<String>,
}

async fn pending_disconnect(
    State(sim): State<Sim>,
    Path(item_id): Path<String>,
    body: Option<Json<PendingDisconnect>>,
) -> Response {
    let reason = body
        .and_then(|Json(b)| b.reason)
        .unwrap_or_else(|| "INSTITUTION_TOKEN_EXPIRATION".to_owned());
    if !["INSTITUTION_TOKEN_EXPIRATION", "INSTITUTION_MIGRATION"].contains(&reason.as_str()) {
        return bad_request("reason must be INSTITUTION_TOKEN_EXPIRATION or INSTITUTION_MIGRATION");
    }
    ok_or_404(sim.pending_disconnect(&item_id, &reason))
}

async fn login_repaired(State(sim): State<Sim>, Path(item_id): Path<String>) -> Response {
    ok_or_404(sim.repair_outside_app(&item_id))
}

fn ok_or_404(found: bool) -> Response {
    if found {
        Json(json!({"ok": true})).into_response()
    } else {
        not_found("item")
    }
}

#[derive(Deserialize)]
struct CompleteLink {
    link_token: String,
    #[serde(default)]
    institution_id: Option<String>,
}

/// The user finishes Link with a link token: a new Item and its public token, or, for an
/// update-mode token, the Item repaired in the app (no webhook: the app hears it from Link).
async fn complete_link(State(sim): State<Sim>, Json(body): Json<CompleteLink>) -> Response {
    let result = sim.with_state(|s| {
        let record = s
            .link_tokens
            .get(&body.link_token)
            .cloned()
            .ok_or("link token not found")?;
        if record.expires_at < chrono::Utc::now() {
            return Err("link token expired");
        }
        s.link_tokens.remove(&body.link_token);
        if let Some(item_id) = record.update_item {
            s.complete_update_mode(&item_id);
            return Ok(json!({"item_id": item_id, "update_mode": true}));
        }
        let item_id = s.create_item(NewItem {
            institution_id: body.institution_id.clone(),
            webhook: record.webhook,
            products: record.products,
            days_requested: Some(record.days_requested),
            transactions: None,
            history_ends: None,
        });
        let public_token = s.issue_public_token(&item_id);
        Ok(json!({"item_id": item_id, "public_token": public_token, "update_mode": false}))
    });
    match result {
        Ok(value) => Json(value).into_response(),
        Err(message) => bad_request(message),
    }
}

#[derive(Deserialize)]
struct Fault {
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    item_id: Option<String>,
    error_type: String,
    error_code: String,
    #[serde(default)]
    error_message: Option<String>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default = "one")]
    count: u32,
}

fn one() -> u32 {
    1
}

/// Queue an error for the next `count` matching Plaid API requests.
async fn inject_fault(State(sim): State<Sim>, Json(body): Json<Fault>) -> Response {
    let mut error = PlaidError::new(
        ErrorType::from(body.error_type),
        ErrorCode::from(body.error_code),
        body.error_message
            .unwrap_or_else(|| "injected by the simulator".to_owned()),
    );
    error.status = body.status;
    sim.inject_fault(InjectedFault {
        endpoint: body.endpoint,
        item_id: body.item_id,
        error,
        remaining: body.count.max(1),
    });
    Json(json!({"ok": true})).into_response()
}

async fn clear_faults(State(sim): State<Sim>) -> Response {
    sim.with_state(|s| {
        s.faults.clear();
        s.limiter.reset();
    });
    Json(json!({"ok": true})).into_response()
}

async fn list_keys(State(sim): State<Sim>) -> Response {
    let keys: Vec<_> = sim.keys().iter().map(|k| k.public_jwk()).collect();
    Json(json!({ "keys": keys })).into_response()
}

async fn rotate_key(State(sim): State<Sim>) -> Response {
    Json(json!({ "key": sim.rotate_key().public_jwk() })).into_response()
}

async fn deliveries(State(sim): State<Sim>) -> Response {
    Json(json!({ "deliveries": sim.deliveries() })).into_response()
}

async fn flush_webhooks(State(sim): State<Sim>) -> Response {
    sim.flush_webhooks();
    Json(json!({"ok": true})).into_response()
}
