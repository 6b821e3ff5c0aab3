//! Typed models of the Plaid API surface plaidhook speaks: the request and response bodies of
//! the endpoints it calls, the webhook bodies it receives, Plaid's error body, and the
//! identifiers that flow between them.
//!
//! The models follow Plaid's OpenAPI definitions (`2020-09-14` API version). Plaid adds enum
//! values without notice, so every enum here is open: an unknown value deserialises into an
//! `Other(String)` variant instead of failing. The same types serve the Plaid HTTP client, the
//! webhook ingress and the local simulator.

#[macro_use]
mod open_enum;

pub mod accounts;
pub mod client;
pub mod enums;
pub mod error;
pub mod ids;
pub mod item;
pub mod jwk;
pub mod link;
pub mod money;
pub mod raw;
pub mod requests;
pub mod transactions;
pub mod webhooks;

pub use accounts::{AccountBalance, AccountBase, AccountsGetResponse, AccountsPage};
pub use enums::{
    AccountSubtype, AccountType, Environment, ErrorCode, ErrorType, PaymentChannel, Product,
    TransactionsUpdateStatus, WebhookCode, WebhookType,
};
pub use error::PlaidError;
pub use ids::{
    AccessToken, AccountId, ApiSecret, Cursor, ItemId, LinkToken, PublicToken, TransactionId,
};
pub use item::{Item, ItemGetResponse, ItemStatus, ItemWithConsentFields};
pub use jwk::{JwkPublicKey, WebhookVerificationKeyGetResponse};
pub use link::{
    LinkEvent, LinkEventMetadata, LinkSessionAccount, LinkSessionExit, LinkSessionExitMetadata,
    LinkSessionInstitution, LinkSessionItemAddResult, LinkSessionResults, LinkTokenGetMetadata,
    LinkTokenGetRequest, LinkTokenGetResponse, LinkTokenGetSession,
};
pub use raw::Raw;
pub use requests::*;
pub use transactions::{
    Location, PaymentMeta, PersonalFinanceCategory, RemovedTransaction, Transaction,
    TransactionCounterparty, TransactionsSyncPage, TransactionsSyncResponse,
};
pub use webhooks::{
    ItemAddResultWebhook, LinkEventsWebhook, LinkSessionFinishedWebhook, LinkSessionStatus,
    Webhook, WebhookHeader,
};
