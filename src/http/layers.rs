//! Middleware applied to every router: a request id on every request and response, one span
//! per request carrying it, so every log line of a request can be found by its id, and JSON
//! answers for unknown routes and methods.

use axum::http::{HeaderName, Request};
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Wraps `router` with request-id and tracing layers and the JSON 404 and 405.
pub fn with_request_layers(router: Router) -> Router {
    // Layers run outside-in: the id is set first, then the span reads it, then the response
    // gets it back.
    router
        // Unknown paths and methods answer in the API's error shape, not with an empty body;
        // axum still adds `Allow` to the 405.
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                // A 5xx is logged where it is made, at the level it deserves (a dependency
                // away is a WARN, a bug an ERROR); a failing probe or a refusal Plaid made
                // must not page anyone as an ERROR here too.
                .on_failure(DefaultOnFailure::new().level(Level::DEBUG))
                .make_span_with(|request: &Request<_>| {
                    let request_id = request
                        .headers()
                        .get(&REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    tracing::info_span!(
                        "request",
                        http.method = %request.method(),
                        http.path = %request.uri().path(),
                        request.id = %request_id,
                    )
                }),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

async fn not_found() -> crate::error::ApiError {
    crate::error::ApiError::NotFound
}

async fn method_not_allowed() -> crate::error::ApiError {
    crate::error::ApiError::MethodNotAllowed
}
