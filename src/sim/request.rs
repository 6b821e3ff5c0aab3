//! The request pipeline every Plaid endpoint shares, in Plaid's order: added latency, content
//! type, JSON body, unknown and wrongly typed fields (`validate`), credentials (body or `PLAID-CLIENT-ID` / `PLAID-SECRET`
//! headers), required fields, typed parsing, injected faults and the 5xx rate, then the
//! endpoint itself. Errors come back in Plaid's shape with its HTTP status and a `request_id`.

use super::errors;
use super::ids::request_id;
use super::state::SimState;
use super::validate;
use super::Sim;
use crate::plaid::PlaidError;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use std::time::Duration;
use subtle::ConstantTimeEq;

/// What an endpoint accepts: its path, its body fields (besides `client_id` and `secret`)
/// and which of them are required.
pub struct Endpoint {
    pub path: &'static str,
    pub fields: &'static [&'static str],
    pub required: &'static [&'static str],
}

pub type Handler<Req, Resp> = fn(&mut SimState, Req, &str) -> Result<Resp, PlaidError>;

pub fn error_response(error: PlaidError, request_id: &str) -> Response {
    // Injected faults come without a documentation_url; Plaid's bodies always have one.
    let mut error = errors::documented(error);
    error.request_id = Some(request_id.to_owned());
    let status = StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    // The status travels in the HTTP status line, not in API error bodies.
    error.status = None;
    (status, Json(error)).into_response()
}

pub async fn handle<Req: DeserializeOwned, Resp: Serialize>(
    sim: Sim,
    endpoint: &'static Endpoint,
    headers: HeaderMap,
    body: Bytes,
    handler: Handler<Req, Resp>,
) -> Response {
    let request_id = request_id();
    let latency = sim.with_state(|s| s.config.latency_ms);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let result = parse(endpoint, &headers, &body).and_then(|(object, request)| {
        sim.with_state(|state| {
            check_credentials(state, &object, &headers)?;
            let token = object.get("access_token").and_then(Value::as_str);
            let item_id = token.and_then(|t| state.by_token.get(t).cloned());
            if let Some(fault) = state.take_fault(endpoint.path, item_id.as_deref()) {
                return Err(fault);
            }
            let rate = state.config.error_rate;
            if rate > 0.0 && rand::Rng::gen_bool(&mut state.rng, rate.min(1.0)) {
                return Err(errors::internal_server_error());
            }
            handler(state, request, &request_id)
        })
    });
    match result {
        Ok(response) => (StatusCode::OK, Json(response)).into_response(),
        Err(error) => error_response(error, &request_id),
    }
}

fn parse<Req: DeserializeOwned>(
    endpoint: &Endpoint,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Map<String, Value>, Req), PlaidError> {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    // Plaid's INVALID_BODY lists "the request content-type was not of type application/json"
    // among its causes: the body is not read as JSON at all.
    if !content_type
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        return Err(errors::invalid_body());
    }
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) else {
        return Err(errors::invalid_body());
    };
    validate::check(endpoint.path, endpoint.fields, &object)?;
    let missing: Vec<&str> = endpoint
        .required
        .iter()
        .copied()
        .filter(|field| object.get(*field).is_none_or(Value::is_null))
        .collect();
    if !missing.is_empty() {
        return Err(errors::missing_fields(&missing));
    }
    let request = serde_json::from_value(Value::Object(object.clone()))
        .map_err(|e| errors::invalid_field(field_error(&e)))?;
    Ok((object, request))
}

fn field_error(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let text = text.split(" at line ").next().unwrap_or(&text);
    format!("invalid request field: {text}")
}

fn check_credentials(
    state: &SimState,
    body: &Map<String, Value>,
    headers: &HeaderMap,
) -> Result<(), PlaidError> {
    let pick = |field: &str, header: &str| -> Option<String> {
        body.get(field)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| {
                headers
                    .get(header)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            })
    };
    let client_id = pick("client_id", "plaid-client-id");
    let secret = pick("secret", "plaid-secret");
    let missing: Vec<&str> = [
        ("client_id", client_id.is_none()),
        ("secret", secret.is_none()),
    ]
    .into_iter()
    .filter_map(|(name, absent)| absent.then_some(name))
    .collect();
    if !missing.is_empty() {
        return Err(errors::missing_fields(&missing));
    }
    // Present but empty is a malformed field, not a missing one (our reading of INVALID_FIELD:
    // "one or more fields in the request body were invalid, malformed").
    for (name, value) in [("client_id", &client_id), ("secret", &secret)] {
        if value.as_deref().is_some_and(str::is_empty) {
            return Err(errors::invalid_field(format!(
                "{name} must be a non-empty string"
            )));
        }
    }
    let id_ok = client_id
        .unwrap_or_default()
        .as_bytes()
        .ct_eq(state.config.client_id.as_bytes());
    let secret_ok = secret
        .unwrap_or_default()
        .as_bytes()
        .ct_eq(state.config.secret.as_bytes());
    if bool::from(id_ok & secret_ok) {
        Ok(())
    } else {
        Err(errors::invalid_api_keys())
    }
}

/// Unknown paths, and methods other than POST on Plaid's paths (every Plaid endpoint is a
/// POST; what Plaid answers another method is undocumented, so the simulator treats it as an
/// endpoint that does not exist): Plaid's 404 NOT_FOUND.
pub async fn not_found() -> Response {
    error_response(errors::not_found(), &request_id())
}
