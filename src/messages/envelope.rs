//! The message a verified webhook becomes on `plaid.webhooks`.
//!
//! `body` is Plaid's JSON exactly as received (a raw value, never re-serialised), wrapped with
//! what consumers need to route and de-duplicate: an id of ours (Plaid sends none), when it was
//! received, and the type, code and Item pulled out of the body. Type and code are Plaid's open
//! enums, so consumers match typed codes and a code Plaid adds tomorrow still round-trips.

use chrono::{DateTime, Utc};
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::plaid::{WebhookCode, WebhookType};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookEnvelope {
    pub id: Uuid,
    pub received_at: DateTime<Utc>,
    pub environment: String,
    pub webhook_type: WebhookType,
    pub webhook_code: WebhookCode,
    pub item_id: Option<String>,
    pub body: Box<RawValue>,
}

impl WebhookEnvelope {
    /// `<webhook_type>.<webhook_code>`, the routing key on `plaid.webhooks`.
    pub fn routing_key(&self) -> String {
        format!("{}.{}", self.webhook_type, self.webhook_code)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an envelope always serialises")
    }

    /// AMQP properties: id, type and time for consumers and tooling, the request id for tracing.
    pub fn properties(&self, request_id: Option<&str>) -> BasicProperties {
        amqp_properties(self.id, &self.routing_key(), self.received_at, request_id)
    }
}

/// The AMQP properties of a message with these fields; the spool relay builds them from its
/// columns without parsing the stored envelope again.
pub fn amqp_properties(
    id: Uuid,
    kind: &str,
    at: DateTime<Utc>,
    request_id: Option<&str>,
) -> BasicProperties {
    let mut headers = FieldTable::default();
    if let Some(request_id) = request_id {
        headers.insert(
            "x-request-id".into(),
            AMQPValue::LongString(request_id.into()),
        );
    }
    BasicProperties::default()
        .with_message_id(id.to_string().into())
        .with_type(kind.into())
        .with_timestamp(at.timestamp().max(0) as u64)
        .with_content_type("application/json".into())
        .with_headers(headers)
}
