//! plaidhook's Plaid HTTP client.
//!
//! Every call is a JSON POST with the credentials in the `PLAID-CLIENT-ID` / `PLAID-SECRET`
//! headers (never in a log line or an error). Failures come back as [`PlaidCallError`]: Plaid's
//! own error body when it sent one, so callers match on `error_code`; otherwise a transport
//! error or timeout. Each call is counted in the `plaidhook_plaid_calls_*` metrics and handed, with
//! Plaid's `request_id` (what Plaid support asks for), to the [`CallRecorder`] the client was
//! given: plaidhook's call log is plaidhook's business (`store::api_calls`), not Plaid's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use super::{
    LinkToken, LinkTokenGetRequest, LinkTokenGetResponse, PlaidError,
    WebhookVerificationKeyGetResponse,
};
use crate::telemetry::names;

#[derive(Debug, thiserror::Error)]
pub enum PlaidCallError {
    /// Plaid answered with its error body.
    #[error("Plaid returned {status}: {error}")]
    Plaid { status: u16, error: PlaidError },
    #[error("Plaid did not answer within {0:?}")]
    Timeout(Duration),
    /// The request did not complete (connection refused, reset, TLS).
    #[error("could not reach Plaid: {0}")]
    Transport(String),
    /// Plaid answered with something that is neither the expected body nor its error body.
    #[error("unexpected response from Plaid ({status}): {detail}")]
    Unexpected { status: u16, detail: String },
}

impl PlaidCallError {
    /// Plaid's error, when it sent one.
    pub fn plaid_error(&self) -> Option<&PlaidError> {
        match self {
            Self::Plaid { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// A Plaid API client; cheap to clone.
#[derive(Clone)]
pub struct PlaidClient {
    http: reqwest::Client,
    base_url: String,
    client_id: String,
    secret: SecretString,
    timeout: Duration,
    /// Where calls are recorded; `None` only for callers without a database (benchmarks).
    call_log: Option<Arc<dyn CallRecorder>>,
}

impl PlaidClient {
    pub fn new(
        base_url: impl Into<String>,
        client_id: impl Into<String>,
        secret: SecretString,
        timeout: Duration,
        call_log: Option<Arc<dyn CallRecorder>>,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("plaidhook/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self {
            http,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            client_id: client_id.into(),
            secret,
            timeout,
            call_log,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// POSTs `body` to `path` (e.g. `/item/get`) and decodes the answer.
    pub async fn call<Req, Resp>(
        &self,
        path: &'static str,
        item: Option<Uuid>,
        body: &Req,
    ) -> Result<Resp, PlaidCallError>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        self.call_with_timeout(path, item, body, self.timeout).await
    }

    /// As [`Self::call`], with its own timeout (`/accounts/balance/get` needs a long one).
    pub async fn call_with_timeout<Req, Resp>(
        &self,
        path: &'static str,
        item: Option<Uuid>,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, PlaidCallError>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let started = Instant::now();
        let result = self.send(path, body, timeout).await;
        let elapsed = started.elapsed();
        let (status, request_id, error) = match &result {
            Ok((status, request_id, _)) => (Some(*status), request_id.clone(), None),
            Err(PlaidCallError::Plaid { status, error }) => {
                (Some(*status), error.request_id.clone(), Some(error))
            }
            Err(_) => (None, None, None),
        };
        let error_code = error.map(|e| e.error_code.as_str().to_owned());
        let outcome = match (&result, &error_code) {
            (Ok(_), _) => "ok".to_owned(),
            (Err(_), Some(code)) => code.clone(),
            (Err(PlaidCallError::Timeout(_)), None) => "timeout".to_owned(),
            (Err(_), None) => "transport".to_owned(),
        };
        metrics::counter!(names::PLAID_CALLS, "method" => path, "outcome" => outcome).increment(1);
        metrics::histogram!(names::PLAID_CALL_DURATION, "method" => path)
            .record(elapsed.as_secs_f64());
        if let Some(recorder) = &self.call_log {
            recorder
                .record(CallRecord {
                    method: path,
                    item,
                    request_id,
                    http_status: status.map(i32::from),
                    error_type: error.map(|e| e.error_type.as_str().to_owned()),
                    error_code,
                    duration_ms: elapsed.as_millis().min(i32::MAX as u128) as i32,
                })
                .await;
        }
        result.map(|(_, _, body)| body)
    }

    async fn send<Req, Resp>(
        &self,
        path: &'static str,
        body: &Req,
        timeout: Duration,
    ) -> Result<(u16, Option<String>, Resp), PlaidCallError>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let request = self
            .http
            .post(format!("{}{}", self.base_url, path))
            .header("PLAID-CLIENT-ID", &self.client_id)
            .header("PLAID-SECRET", self.secret.expose_secret())
            .header("Plaid-Version", "2020-09-14")
            .json(body)
            .timeout(timeout);
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(e, timeout))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(e, timeout))?;
        if (200..300).contains(&status) {
            let request_id = serde_json::from_slice::<RequestIdOnly>(&bytes)
                .ok()
                .and_then(|r| r.request_id);
            return serde_json::from_slice(&bytes)
                .map(|decoded| (status, request_id, decoded))
                .map_err(|e| PlaidCallError::Unexpected {
                    status,
                    detail: format!("undecodable body: {e}"),
                });
        }
        match serde_json::from_slice::<PlaidError>(&bytes) {
            Ok(error) => Err(PlaidCallError::Plaid { status, error }),
            Err(_) => Err(PlaidCallError::Unexpected {
                status,
                detail: String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
            }),
        }
    }

    /// `/webhook_verification_key/get`: the public key Plaid signs webhooks with under `key_id`.
    pub async fn webhook_verification_key(
        &self,
        key_id: &str,
    ) -> Result<WebhookVerificationKeyGetResponse, PlaidCallError> {
        self.call(
            "/webhook_verification_key/get",
            None,
            &serde_json::json!({ "key_id": key_id }),
        )
        .await
    }

    /// `/link/token/get`: a link token's metadata and its Link sessions with their results
    /// (the public token of a Hosted Link session that added an Item). `item` is plaidhook's
    /// Item the token was made for, when it was (update mode).
    pub async fn link_token_get(
        &self,
        link_token: &LinkToken,
        item: Option<Uuid>,
    ) -> Result<LinkTokenGetResponse, PlaidCallError> {
        let request = LinkTokenGetRequest {
            client_id: None,
            secret: None,
            link_token: link_token.clone(),
        };
        self.call("/link/token/get", item, &request).await
    }
}

#[derive(serde::Deserialize)]
struct RequestIdOnly {
    request_id: Option<String>,
}

fn transport_error(error: reqwest::Error, timeout: Duration) -> PlaidCallError {
    if error.is_timeout() {
        PlaidCallError::Timeout(timeout)
    } else {
        // without_url: the URL carries no secret, but keep errors short and uniform.
        PlaidCallError::Transport(error.without_url().to_string())
    }
}

/// One Plaid call, as a call log records it.
#[derive(Debug, Clone)]
pub struct CallRecord {
    /// The endpoint, e.g. `/item/get`.
    pub method: &'static str,
    /// plaidhook's Item id, when the call was about one.
    pub item: Option<Uuid>,
    pub request_id: Option<String>,
    pub http_status: Option<i32>,
    pub error_type: Option<String>,
    pub error_code: Option<String>,
    pub duration_ms: i32,
}

/// Keeps a record of every call. Best effort by contract: recording must never fail, nor
/// noticeably delay, the call it describes.
pub trait CallRecorder: Send + Sync {
    fn record(&self, call: CallRecord) -> BoxFuture<'_, ()>;
}
