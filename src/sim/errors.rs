//! The errors the simulator returns, with Plaid's types, codes, messages and HTTP statuses,
//! and the `documentation_url` and `suggested_action` every Plaid error body carries.

use crate::plaid::{ErrorCode, ErrorType, PlaidError};

fn error(error_type: ErrorType, code: ErrorCode, message: impl Into<String>) -> PlaidError {
    documented(PlaidError::new(error_type, code, message))
}

/// Plaid's page of errors of each type (https://plaid.com/docs/errors/).
fn errors_page(error_type: &ErrorType) -> Option<&'static str> {
    Some(match error_type {
        ErrorType::InvalidRequest => "invalid-request",
        ErrorType::InvalidInput => "invalid-input",
        ErrorType::InvalidResult => "invalid-result",
        ErrorType::InstitutionError => "institution",
        ErrorType::RateLimitExceeded => "rate-limit-exceeded",
        ErrorType::ApiError => "api",
        ErrorType::ItemError => "item",
        ErrorType::TransactionsError => "transactions",
        ErrorType::SandboxError => "sandbox",
        ErrorType::AssetReportError => "assets",
        ErrorType::RecaptchaError => "recaptcha",
        ErrorType::OauthError => "oauth",
        ErrorType::MicrodepositsError => "microdeposits",
        ErrorType::PartnerError => "partner",
        _ => return None,
    })
}

/// `error` with its `documentation_url` as Plaid gives it, the section of its code on its
/// type's page (e.g. `https://plaid.com/docs/errors/item/#item_login_required`), unless it has
/// one. `suggested_action` stays as it is: null unless Plaid documents one (none of the codes
/// the simulator returns has one).
pub fn documented(mut error: PlaidError) -> PlaidError {
    if error.documentation_url.is_none() {
        let anchor = error.error_code.as_str().to_ascii_lowercase();
        error.documentation_url = Some(match errors_page(&error.error_type) {
            Some(page) => format!("https://plaid.com/docs/errors/{page}/#{anchor}"),
            None => "https://plaid.com/docs/errors/".to_owned(),
        });
    }
    error
}

pub fn invalid_body() -> PlaidError {
    error(
        ErrorType::InvalidRequest,
        ErrorCode::InvalidBody,
        "body could not be parsed as JSON",
    )
}

pub fn missing_fields(fields: &[&str]) -> PlaidError {
    error(
        ErrorType::InvalidRequest,
        ErrorCode::MissingFields,
        format!(
            "the following required fields are missing: {}",
            fields.join(", ")
        ),
    )
}

pub fn unknown_fields(fields: &[String]) -> PlaidError {
    error(
        ErrorType::InvalidRequest,
        ErrorCode::UnknownFields,
        format!(
            "the following fields are not recognized by this endpoint: {}",
            fields.join(", ")
        ),
    )
}

pub fn invalid_field(message: impl Into<String>) -> PlaidError {
    error(ErrorType::InvalidRequest, ErrorCode::InvalidField, message)
}

pub fn not_found() -> PlaidError {
    error(ErrorType::InvalidRequest, ErrorCode::NotFound, "not found").with_status(404)
}

pub fn invalid_api_keys() -> PlaidError {
    error(
        ErrorType::InvalidInput,
        ErrorCode::InvalidApiKeys,
        "invalid client_id or secret provided",
    )
}

pub fn invalid_access_token_format() -> PlaidError {
    error(
        ErrorType::InvalidInput,
        ErrorCode::InvalidAccessToken,
        "provided access token is in an invalid format. expected format: access-<environment>-<identifier>",
    )
}

pub fn unknown_access_token() -> PlaidError {
    error(
        ErrorType::InvalidInput,
        ErrorCode::InvalidAccessToken,
        "could not find matching access token",
    )
}

pub fn invalid_public_token(message: &str) -> PlaidError {
    error(
        ErrorType::InvalidInput,
        ErrorCode::InvalidPublicToken,
        message,
    )
}

pub fn invalid_institution() -> PlaidError {
    error(
        ErrorType::InvalidInput,
        ErrorCode::InvalidInstitution,
        "invalid institution_id provided",
    )
}

pub fn invalid_key_id() -> PlaidError {
    error(
        ErrorType::InvalidInput,
        ErrorCode::InvalidWebhookVerificationKeyId,
        "invalid key_id provided. note that key_ids are specific to Plaid environments, and verification requests must be made to the same environment that the webhook was sent from",
    )
}

pub fn invalid_account_id() -> PlaidError {
    error(
        ErrorType::InvalidInput,
        ErrorCode::InvalidAccountId,
        "one or more of the account IDs is invalid",
    )
}

pub fn item_not_found() -> PlaidError {
    error(
        ErrorType::ItemError,
        ErrorCode::ItemNotFound,
        "the requested item was not found. it may have been removed",
    )
}

/// ITEM_LOGIN_REQUIRED as an API response and as `item.error` / webhook `error` (with status).
pub fn item_login_required() -> PlaidError {
    error(
        ErrorType::ItemError,
        ErrorCode::ItemLoginRequired,
        "the login details of this item have changed (credentials, MFA, or required user action) and a user login is required to update this information. use Link's update mode to restore the item to a good state",
    )
    .with_display_message("The login details of this item have changed. Please sign in again to restore access.")
}

pub fn mutation_during_pagination() -> PlaidError {
    error(
        ErrorType::TransactionsError,
        ErrorCode::TransactionsSyncMutationDuringPagination,
        "Underlying transaction data changed since last page was fetched. Please restart pagination from last update.",
    )
}

/// RATE_LIMIT_EXCEEDED with `code`. Plaid's page of these errors gives the same message for
/// every code, per-client limits included.
pub fn rate_limit(code: ErrorCode) -> PlaidError {
    error(
        ErrorType::RateLimitExceeded,
        code,
        "rate limit exceeded for attempts to access this item. please try again later",
    )
}

pub fn internal_server_error() -> PlaidError {
    error(
        ErrorType::ApiError,
        ErrorCode::InternalServerError,
        "an unexpected error occurred",
    )
    .with_display_message("Internal server error occurred")
}

pub fn sandbox_product_not_enabled(product: &str) -> PlaidError {
    error(
        ErrorType::SandboxError,
        ErrorCode::SandboxProductNotEnabled,
        format!("the {product} product is not enabled for this item"),
    )
}

pub fn sandbox_webhook_invalid() -> PlaidError {
    error(
        ErrorType::SandboxError,
        ErrorCode::SandboxWebhookInvalid,
        "the webhook for this item is either not set or not valid",
    )
}

/// INVALID_LINK_TOKEN: a link token that is malformed, unknown or expired. The messages are
/// the simulator's (Plaid documents the code and its causes, not the wording), shaped like its
/// access and public token messages.
pub fn invalid_link_token(message: &str) -> PlaidError {
    error(
        ErrorType::InvalidInput,
        ErrorCode::InvalidLinkToken,
        message,
    )
}

/// INVALID_CREDENTIALS, as Link shows it for a wrong username or password.
pub fn invalid_credentials() -> PlaidError {
    error(
        ErrorType::ItemError,
        ErrorCode::InvalidCredentials,
        "the provided credentials were not correct",
    )
    .with_display_message("The provided credentials were not correct. Please try again.")
}
