//! The management API, served on the internal listener under `/api/v1/…`.
//!
//! Every route here requires a bearer token (`auth`); `/healthz`, `/readyz` and `/metrics` live
//! on the same listener outside this router and stay open for probes and scrapers. Errors are
//! `{"error": {"code", "message"}}` with the stable codes of [`crate::error::ApiError`]; a
//! malformed body is a 400 that says what is wrong, before anything is changed.
//!
//! - `auth`: bearer tokens, stored as SHA-256 hashes, compared in constant time.
//! - `link`: Link tokens (new Item and update mode), public-token exchange, Link success.
//! - `items`: listing, reading and removing Items.
//! - `actions`: balances on demand and manual sync.
//! - `deadletters`: listing and replaying what parked in `plaidhook.dead`.
//! - `spool`: listing and replaying webhooks the spool parked (the broker kept refusing them).
//! - `openapi`: the OpenAPI document at `/api/openapi.json`.

pub mod actions;
pub mod auth;
pub mod deadletters;
pub mod items;
pub mod link;
pub mod openapi;
pub mod spool;

use crate::repair::HostedLinks;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::FromRequest;
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use std::time::Duration;

use sqlx::PgPool;

use crate::broker::{Broker, Publisher};
use crate::config::{ApiSettings, LinkSettings};
use crate::crypto::TokenCipher;
use crate::error::ApiError;
use crate::items::rows::{self, Credentials, CredentialsError};
use crate::items::{transition, ItemStatus, Reconciler, StatusSource, Transition};
use crate::messages::SyncRequester;
use crate::plaid::client::{PlaidCallError, PlaidClient};
use crate::plaid::{ErrorType, PlaidError};

/// What the API's handlers work with, built by the application.
pub struct ApiContext {
    pub db: PgPool,
    pub plaid: PlaidClient,
    pub tokens: TokenCipher,
    pub reconciler: Reconciler,
    pub sync_requests: SyncRequester,
    /// For the dead-letter operations.
    pub broker: Broker,
    pub publisher: Arc<Publisher>,
    pub api: ApiSettings,
    pub link: LinkSettings,
    /// Timeout of `/accounts/balance/get`.
    pub balance_timeout: Duration,
    /// Where Plaid is told to send webhooks (given in every Link token).
    pub webhook_url: String,
    /// Opens Hosted Link repair sessions (`hosted: true`).
    pub hosted_links: HostedLinks,
}

/// The handlers' state: one context, shared.
pub type ApiState = Arc<ApiContext>;

impl ApiContext {
    /// The Item's opened access token, for a call to Plaid.
    pub async fn credentials(&self, item_id: Uuid) -> Result<Credentials, ApiError> {
        let mut conn = self.db.acquire().await?;
        Ok(rows::credentials(&mut conn, &self.tokens, item_id).await?)
    }
}

impl From<CredentialsError> for ApiError {
    fn from(error: CredentialsError) -> Self {
        match error {
            CredentialsError::NotFound(_) => ApiError::NotFound,
            CredentialsError::Database(error) => error.into(),
            unreadable @ CredentialsError::Unreadable(_) => ApiError::Internal(unreadable.into()),
        }
    }
}

/// The API's routes, authenticated, with their state applied.
pub fn router(state: ApiState) -> Router {
    let auth = Arc::new(auth::ApiAuth::from_settings(&state.api));
    // Names only (labels, not secrets): an operator sees which tokens this process accepts,
    // and a process that accepts none says so instead of answering 401 with no hint.
    let names = auth.names();
    if names.is_empty() {
        tracing::warn!(
            "no management API token configured (api.tokens.<name>): every API call answers 401"
        );
    } else {
        tracing::info!(api.tokens = ?names, "management API tokens loaded");
    }
    Router::new()
        .route("/api/openapi.json", get(openapi::document))
        .route("/api/v1/link/token", post(link::create_link_token))
        .route("/api/v1/link/exchange", post(link::exchange_public_token))
        .route("/api/v1/items", get(items::list))
        .route(
            "/api/v1/items/{item_id}",
            get(items::get).delete(items::remove),
        )
        .route("/api/v1/items/{item_id}/remove", post(items::remove))
        .route(
            "/api/v1/items/{item_id}/link-token",
            post(link::create_update_link_token),
        )
        .route(
            "/api/v1/items/{item_id}/link-success",
            post(link::link_success),
        )
        .route(
            "/api/v1/items/{item_id}/balances/refresh",
            post(actions::refresh_balances),
        )
        .route("/api/v1/items/{item_id}/sync", post(actions::manual_sync))
        .route("/api/v1/dead-letters", get(deadletters::list))
        .route("/api/v1/dead-letters/replay", post(deadletters::replay))
        .route("/api/v1/spool/parked", get(spool::list))
        .route("/api/v1/spool/parked/replay", post(spool::replay))
        .route_layer(axum::middleware::from_fn_with_state(
            auth,
            auth::require_bearer,
        ))
        .with_state(state)
}

/// A JSON object body; anything else (another content type, invalid JSON, an array where the
/// object belongs, a wrong field) is a 400 `bad_request` saying what is wrong with it.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(
        request: axum::extract::Request,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let is_json = request
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .map(|essence| essence.trim().to_ascii_lowercase())
            .is_some_and(|essence| {
                essence == "application/json"
                    || (essence.starts_with("application/") && essence.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::BadRequest(
                "expected a JSON body (`Content-Type: application/json`)".into(),
            ));
        }
        let body = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|e| {
                ApiError::BadRequest(format!("invalid request body: {}", e.body_text()))
            })?;
        json_object(&body).map(ApiJson)
    }
}

/// Parses a JSON object: serde would also read a struct from an array (`["u"]`), which the
/// OpenAPI document does not allow.
fn json_object<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(ApiError::BadRequest(
            "invalid request body: expected a JSON object".into(),
        ));
    }
    // axum's decoder names the offending field (`update.x: invalid type …`).
    axum::Json::<T>::from_bytes(body)
        .map(|axum::Json(value)| value)
        .map_err(ApiError::from)
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        ApiError::BadRequest(format!("invalid request body: {}", rejection.body_text()))
    }
}

/// A query string that did not parse, as the client sees it: a 400 that says why.
pub fn query_rejection(rejection: axum::extract::rejection::QueryRejection) -> ApiError {
    ApiError::BadRequest(format!("invalid query: {}", rejection.body_text()))
}

/// Parses an optional JSON body: empty means `T::default()`.
pub fn optional_body<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    json_object(body)
}

/// `Option<T>` from a JSON number that is a whole number, written `5` or `5.0`: JSON Schema's
/// `integer`, which the OpenAPI document promises, admits both. Use with
/// `#[serde(default, deserialize_with = "…")]`.
pub fn whole_number<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64>,
{
    use serde::de::Error;
    use serde::Deserialize;
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let whole = number
        .as_i64()
        .or_else(|| {
            number
                .as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        })
        .ok_or_else(|| D::Error::custom(format!("{number} is not a whole number")))?;
    T::try_from(whole)
        .map(Some)
        .map_err(|_| D::Error::custom(format!("{whole} is out of range")))
}

/// The `limit` of a list or replay call: `default` when absent, else between 1 and `max`.
pub fn checked_limit<T>(limit: Option<T>, default: T, max: T) -> Result<T, ApiError>
where
    T: Copy + PartialOrd + From<u8> + std::fmt::Display,
{
    match limit.unwrap_or(default) {
        n if n < T::from(1) => Err(ApiError::BadRequest("`limit` must be at least 1".into())),
        n if n > max => Err(ApiError::BadRequest(format!(
            "`limit` must be at most {max}"
        ))),
        n => Ok(n),
    }
}

/// The Item id in a path, or a 400 that says it is not one.
pub fn parse_item_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw)
        .map_err(|_| ApiError::BadRequest(format!("`{raw}` is not an Item id (a UUID)")))
}

/// A string field that must be present and not blank, up to `max` characters.
pub fn require_text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::BadRequest(format!("`{field}` must not be empty")));
    }
    if value.chars().count() > max {
        return Err(ApiError::BadRequest(format!(
            "`{field}` must be at most {max} characters"
        )));
    }
    // PostgreSQL's text cannot hold NUL: refused here, not as a 503 from the database.
    if value.contains('\0') {
        return Err(ApiError::BadRequest(format!(
            "`{field}` must not contain NUL characters"
        )));
    }
    Ok(())
}

/// Plaid's rate limits are per rolling minute and Plaid sends no `Retry-After`: a minute is
/// when a refused call is sure to be inside a fresh window.
const PLAID_LIMIT_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// What a failed Plaid call means for the API's client.
pub fn plaid_failure(error: PlaidCallError) -> ApiError {
    match error {
        PlaidCallError::Plaid { error, .. } => {
            if error.error_type == ErrorType::RateLimitExceeded {
                ApiError::RateLimited {
                    message: format!("Plaid rate limit ({}): try again later", error.error_code),
                    retry_after: PLAID_LIMIT_WINDOW,
                }
            } else if error.error_type == ErrorType::ItemError {
                ApiError::PlaidItemState {
                    plaid_code: error.error_code.as_str().to_owned(),
                    message: error.error_message,
                }
            } else {
                ApiError::Plaid {
                    plaid_code: error.error_code.as_str().to_owned(),
                    message: error.error_message,
                }
            }
        }
        other => ApiError::Unavailable(anyhow::Error::new(other).context("calling Plaid")),
    }
}

/// An ITEM_ERROR met on an API call is news about the Item's health: record it as the sync
/// worker does, through `transition` (which raises the alert).
pub async fn record_item_error(
    state: &ApiContext,
    item_id: Uuid,
    error: &PlaidCallError,
) -> Result<(), ApiError> {
    let Some(plaid) = error.plaid_error() else {
        return Ok(());
    };
    if plaid.error_type != ErrorType::ItemError {
        return Ok(());
    }
    let to = crate::items::status_for_error(&plaid.error_code);
    move_item(state, item_id, to, "item_error", Some(plaid)).await
}

async fn move_item(
    state: &ApiContext,
    item_id: Uuid,
    to: ItemStatus,
    cause: &str,
    error: Option<&PlaidError>,
) -> Result<(), ApiError> {
    let mut tx = state.db.begin().await?;
    transition(
        &mut tx,
        item_id,
        Transition {
            to,
            cause,
            error_code: error.map(|e| e.error_code.as_str()),
            error_message: error.map(|e| e.error_message.as_str()),
            source: StatusSource::Api,
        },
    )
    .await?;
    Ok(tx.commit().await?)
}
