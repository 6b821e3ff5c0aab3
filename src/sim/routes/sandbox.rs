//! Sandbox endpoints: `/sandbox/public_token/create`, `/sandbox/item/reset_login`,
//! `/sandbox/item/fire_webhook` (every code Plaid's sandbox accepts).

use crate::plaid::{
    AccessTokenRequest, PlaidError, Product, PublicToken, SandboxItemFireWebhookRequest,
    SandboxItemFireWebhookResponse, SandboxItemResetLoginResponse, SandboxPublicTokenCreateRequest,
    SandboxPublicTokenCreateResponse, WebhookCode, WebhookType,
};
use crate::sim::bodies::{self, Context};
use crate::sim::catalog::is_valid_institution_id;
use crate::sim::errors;
use crate::sim::state::{NewItem, SimState};
use chrono::{Duration, Utc};
use serde_json::json;

pub fn public_token_create(
    state: &mut SimState,
    req: SandboxPublicTokenCreateRequest,
    request_id: &str,
) -> Result<SandboxPublicTokenCreateResponse, PlaidError> {
    if !is_valid_institution_id(&req.institution_id) {
        return Err(errors::invalid_institution());
    }
    if req.initial_products.is_empty() {
        return Err(errors::invalid_field(
            "initial_products must contain at least one product",
        ));
    }
    let options = req.options.unwrap_or_default();
    let transactions = options.transactions.unwrap_or_default();
    let days_requested = match (transactions.start_date, transactions.end_date) {
        (Some(start), Some(end)) if end >= start => Some(((end - start).num_days() + 1) as u32),
        (Some(_), Some(_)) => {
            return Err(errors::invalid_field(
                "options.transactions.end_date must not be before start_date",
            ))
        }
        _ => transactions.days_requested,
    };
    if days_requested.is_some_and(|days| !(1..=730).contains(&days)) {
        return Err(errors::invalid_field(
            "options.transactions.days_requested must be between 1 and 730",
        ));
    }
    let item_id = state.create_item(NewItem {
        institution_id: Some(req.institution_id),
        webhook: options.webhook,
        products: req.initial_products,
        days_requested,
        transactions: None,
        history_ends: transactions.end_date,
    });
    let public_token = state.issue_public_token(&item_id);
    Ok(SandboxPublicTokenCreateResponse {
        public_token: PublicToken::new(public_token),
        request_id: request_id.to_owned(),
    })
}

pub fn reset_login(
    state: &mut SimState,
    req: AccessTokenRequest,
    request_id: &str,
) -> Result<SandboxItemResetLoginResponse, PlaidError> {
    let item_id = state
        .item_by_token(req.access_token.expose_secret())?
        .item_id
        .clone();
    state.reset_login(&item_id);
    Ok(SandboxItemResetLoginResponse {
        reset_login: true,
        request_id: request_id.to_owned(),
    })
}

pub fn fire_webhook(
    state: &mut SimState,
    req: SandboxItemFireWebhookRequest,
    request_id: &str,
) -> Result<SandboxItemFireWebhookResponse, PlaidError> {
    let item = state.item_by_token(req.access_token.expose_secret())?;
    if item.webhook.is_none() {
        return Err(errors::sandbox_webhook_invalid());
    }
    let item_id = item.item_id.clone();
    let products = item.products.clone();
    let first_account = item.data.accounts[0].account_id.clone();
    let account_ids: Vec<String> = item
        .data
        .accounts
        .iter()
        .map(|a| a.account_id.clone())
        .collect();
    let require = |product: Product, name: &str| {
        if products.contains(&product) {
            Ok(())
        } else {
            Err(errors::sandbox_product_not_enabled(name))
        }
    };
    let env = state.config.environment.clone();
    let ctx = Context {
        item_id: &item_id,
        environment: &env,
    };
    let (kind, body): ((String, &str), Vec<u8>) = match &req.webhook_code {
        WebhookCode::DefaultUpdate => {
            let webhook_type = req
                .webhook_type
                .clone()
                .unwrap_or(WebhookType::Transactions);
            let (product, extra) = match &webhook_type {
                WebhookType::Transactions => (Product::Transactions, None),
                WebhookType::Auth => (
                    Product::Auth,
                    Some(
                        json!({"account_ids_with_new_numbers": [], "account_ids_with_updated_auth": {}, "error": null}),
                    ),
                ),
                WebhookType::Other(t) if t == "IDENTITY" => (
                    Product::Identity,
                    Some(json!({"account_ids_with_updated_identity": {}, "error": null})),
                ),
                WebhookType::InvestmentsTransactions => (
                    Product::Investments,
                    Some(
                        json!({"new_investments_transactions": 0, "canceled_investments_transactions": 0, "error": null}),
                    ),
                ),
                WebhookType::Holdings => (
                    Product::Investments,
                    Some(json!({"new_holdings": 0, "updated_holdings": 0, "error": null})),
                ),
                WebhookType::Liabilities => (
                    Product::Liabilities,
                    Some(
                        json!({"account_ids_with_new_liabilities": [], "account_ids_with_updated_liabilities": {}, "error": null}),
                    ),
                ),
                other => {
                    return Err(errors::invalid_field(format!(
                        "webhook_type {other} is not valid for DEFAULT_UPDATE"
                    )))
                }
            };
            require(product.clone(), product.as_str())?;
            let body = match extra {
                None => bodies::transactions_update(&ctx, WebhookCode::DefaultUpdate, 0),
                Some(extra) => {
                    bodies::generic(&ctx, webhook_type.as_str(), "DEFAULT_UPDATE", extra)
                }
            };
            ((webhook_type.as_str().to_owned(), "DEFAULT_UPDATE"), body)
        }
        WebhookCode::NewAccountsAvailable => (
            ("ITEM".into(), "NEW_ACCOUNTS_AVAILABLE"),
            bodies::item_notice(&ctx, WebhookCode::NewAccountsAvailable, None),
        ),
        WebhookCode::SmsMicrodepositsVerification => {
            require(Product::Auth, "auth")?;
            let extra = json!({"account_id": first_account, "status": "MANUALLY_VERIFIED"});
            (
                ("AUTH".into(), "SMS_MICRODEPOSITS_VERIFICATION"),
                bodies::generic(&ctx, "AUTH", "SMS_MICRODEPOSITS_VERIFICATION", extra),
            )
        }
        WebhookCode::AuthorizationGranted => {
            let webhook_type = req
                .webhook_type
                .clone()
                .map_or_else(|| "ITEM".to_owned(), |t| t.to_string());
            let body = bodies::generic(&ctx, &webhook_type, "AUTHORIZATION_GRANTED", json!({}));
            ((webhook_type, "AUTHORIZATION_GRANTED"), body)
        }
        WebhookCode::UserPermissionRevoked => {
            let error = PlaidError::new(
                crate::plaid::ErrorType::ItemError,
                crate::plaid::ErrorCode::UserPermissionRevoked,
                "the user has revoked access to this item",
            )
            .with_status(400);
            (
                ("ITEM".into(), "USER_PERMISSION_REVOKED"),
                bodies::item_notice(&ctx, WebhookCode::UserPermissionRevoked, Some(error)),
            )
        }
        WebhookCode::UserAccountRevoked => (
            ("ITEM".into(), "USER_ACCOUNT_REVOKED"),
            bodies::user_account_revoked(&ctx, &first_account),
        ),
        WebhookCode::PendingDisconnect => (
            ("ITEM".into(), "PENDING_DISCONNECT"),
            bodies::pending_disconnect(&ctx, Utc::now() + Duration::days(7)),
        ),
        WebhookCode::RecurringTransactionsUpdate => (
            ("TRANSACTIONS".into(), "RECURRING_TRANSACTIONS_UPDATE"),
            bodies::recurring_update(&ctx, account_ids),
        ),
        WebhookCode::LoginRepaired => (
            ("ITEM".into(), "LOGIN_REPAIRED"),
            bodies::item_notice(&ctx, WebhookCode::LoginRepaired, None),
        ),
        WebhookCode::SyncUpdatesAvailable => (
            ("TRANSACTIONS".into(), "SYNC_UPDATES_AVAILABLE"),
            bodies::sync_updates_available(&ctx, true, true),
        ),
        WebhookCode::ProductReady | WebhookCode::Error => {
            require(Product::Assets, "assets")?;
            let report = uuid::Uuid::new_v4().to_string();
            let (code, extra) = if req.webhook_code == WebhookCode::ProductReady {
                (
                    "PRODUCT_READY",
                    json!({"asset_report_id": report, "report_type": "FULL"}),
                )
            } else {
                let error = json!({"error_type": "ASSET_REPORT_ERROR", "error_code": "PRODUCT_NOT_READY",
                    "error_message": "the asset report could not be generated", "display_message": null, "status": 400});
                ("ERROR", json!({"asset_report_id": report, "error": error}))
            };
            (
                ("ASSETS".into(), code),
                bodies::generic(&ctx, "ASSETS", code, extra),
            )
        }
        other => {
            return Err(errors::invalid_field(format!(
                "webhook_code {other} is not supported by /sandbox/item/fire_webhook"
            )))
        }
    };
    if req.webhook_code == WebhookCode::LoginRepaired {
        if let Some(item) = state.items.get_mut(&item_id) {
            item.error = None;
        }
    }
    state.emit(&item_id, move |_| body, (&kind.0, kind.1));
    Ok(SandboxItemFireWebhookResponse {
        webhook_fired: true,
        request_id: request_id.to_owned(),
    })
}
