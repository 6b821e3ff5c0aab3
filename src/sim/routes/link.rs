//! `/link/token/create` (new Items, update mode, Hosted Link), `/link/token/get` and
//! `/item/public_token/exchange`.

use crate::plaid::{
    AccessToken, ItemPublicTokenExchangeRequest, ItemPublicTokenExchangeResponse, LinkSessionExit,
    LinkSessionExitMetadata, LinkSessionInstitution, LinkSessionItemAddResult, LinkSessionResults,
    LinkToken, LinkTokenCreateRequest, LinkTokenCreateResponse, LinkTokenGetMetadata,
    LinkTokenGetRequest, LinkTokenGetResponse, LinkTokenGetSession, PlaidError, Product,
};
use crate::sim::catalog::{institution_name, is_valid_institution_id};
use crate::sim::errors;
use crate::sim::ids::{plaid_id, token};
use crate::sim::state::{
    HostedLinkRecord, LinkSessionRecord, LinkTokenRecord, SessionOutcome, SimState,
    LINK_TOKEN_KEPT_AFTER_EXPIRY,
};
use chrono::{Duration, Utc};

/// `CountryCode` of Plaid's spec.
const COUNTRY_CODES: &[&str] = &[
    "US", "GB", "ES", "NL", "FR", "IE", "CA", "DE", "IT", "PL", "DK", "NO", "SE", "EE", "LT", "LV",
    "PT", "BE", "AT", "FI",
];

/// `hosted_link.url_lifetime_seconds` "cannot be longer than 21 days".
const MAX_URL_LIFETIME_SECS: u64 = 21 * 24 * 3600;

pub fn link_token_create(
    state: &mut SimState,
    req: LinkTokenCreateRequest,
    request_id: &str,
) -> Result<LinkTokenCreateResponse, PlaidError> {
    if req.client_name.is_empty() {
        return Err(errors::invalid_field(
            "client_name must be a non-empty string",
        ));
    }
    if req.language.is_empty() {
        return Err(errors::invalid_field("language must be a non-empty string"));
    }
    if req.country_codes.is_empty() {
        return Err(errors::invalid_field(
            "country_codes must contain at least one country code",
        ));
    }
    // The wording is the simulator's: Plaid documents the set (`CountryCode`), not the message.
    if let Some(code) = req
        .country_codes
        .iter()
        .find(|code| !COUNTRY_CODES.contains(&code.as_str()))
    {
        return Err(errors::invalid_field(format!(
            "invalid country code {code:?} in country_codes; supported: {}",
            COUNTRY_CODES.join(", ")
        )));
    }
    // "One of either the `user_id` or the `user` field is required." Before `user_id` existed
    // `user` was a required field, refused as MISSING_FIELDS; the simulator keeps that answer.
    if req.user.is_none() && req.user_id.as_deref().is_none_or(str::is_empty) {
        return Err(errors::missing_fields(&["user"]));
    }
    if req
        .user
        .as_ref()
        .is_some_and(|user| user.client_user_id.is_empty())
    {
        return Err(errors::invalid_field(
            "user.client_user_id must be a non-empty string",
        ));
    }
    let update_item = match &req.access_token {
        Some(access_token) => Some(
            state
                .item_by_token(access_token.expose_secret())?
                .item_id
                .clone(),
        ),
        None => None,
    };
    let products = req.products.clone().unwrap_or_default();
    if update_item.is_none() && products.is_empty() {
        // Plaid's answer to a request without products (plaid-node issue #563).
        return Err(errors::invalid_field("must provide at least one product"));
    }
    // Plaid: "balance is not a valid value, the Balance product does not require explicit
    // initialization". The message is the simulator's.
    if products.contains(&Product::Balance) {
        return Err(errors::invalid_field(
            "balance is not a valid product for Link: Balance needs no initialization and comes with any other product",
        ));
    }
    if let Some(institution_id) = &req.institution_id {
        // As `/sandbox/public_token/create`: any id shaped like Plaid's exists here.
        if !is_valid_institution_id(institution_id) {
            return Err(errors::invalid_institution());
        }
    }
    let days_requested = req.transactions.as_ref().and_then(|t| t.days_requested);
    if days_requested.is_some_and(|days| !(1..=730).contains(&days)) {
        return Err(errors::invalid_field(
            "transactions.days_requested must be between 1 and 730",
        ));
    }
    // Plaid: 4 hours for a new Item, 30 minutes in update mode; with Hosted Link the token
    // expires with the URL: `url_lifetime_seconds`, by default 30 minutes (1 day for links
    // delivered by SMS, 7 days by email).
    let lifetime = match &req.hosted_link {
        Some(hosted) => match hosted.url_lifetime_seconds {
            Some(secs) if secs == 0 || secs > MAX_URL_LIFETIME_SECS => {
                return Err(errors::invalid_field(
                    "hosted_link.url_lifetime_seconds must be positive and at most 21 days (1814400)",
                ))
            }
            Some(secs) => Duration::seconds(secs as i64),
            None => match hosted.delivery_method.as_ref().map(|m| m.as_str()) {
                Some("sms") => Duration::days(1),
                Some("email") => Duration::days(7),
                _ => Duration::minutes(30),
            },
        },
        None if update_item.is_some() => Duration::minutes(30),
        None => Duration::hours(4),
    };
    let now = Utc::now();
    state
        .link_tokens
        .retain(|_, record| record.expires_at + LINK_TOKEN_KEPT_AFTER_EXPIRY > now);
    let expires_at = now + lifetime;
    let link_token = token(&mut rand::rngs::OsRng, "link", &state.config.environment);
    let hosted_link = req.hosted_link.as_ref().map(|hosted| HostedLinkRecord {
        url_id: plaid_id(&mut rand::rngs::OsRng),
        completion_redirect_uri: hosted
            .completion_redirect_uri
            .clone()
            .filter(|uri| !uri.is_empty()),
    });
    // Plaid serves Hosted Link from its own host (`https://secure.plaid.com/hl/…`); the
    // simulator serves the page itself.
    let hosted_link_url = hosted_link
        .as_ref()
        .map(|hosted| format!("{}/hl/{}", state.base_url, hosted.url_id));
    state.link_tokens.insert(
        link_token.clone(),
        LinkTokenRecord {
            expires_at,
            webhook: req.webhook.clone().filter(|url| !url.is_empty()),
            products,
            days_requested: days_requested.unwrap_or(state.config.default_days_requested),
            update_item,
            created_at: now,
            client_name: req.client_name.clone(),
            language: req.language.clone(),
            country_codes: req.country_codes.clone(),
            redirect_uri: req.redirect_uri.clone(),
            institution_id: req.institution_id.clone(),
            hosted_link,
            sessions: Vec::new(),
        },
    );
    Ok(LinkTokenCreateResponse {
        link_token: LinkToken::new(link_token),
        expiration: expires_at,
        request_id: request_id.to_owned(),
        hosted_link_url,
    })
}

/// `/link/token/get`: the token's creation arguments and its sessions with their results.
pub fn link_token_get(
    state: &mut SimState,
    req: LinkTokenGetRequest,
    request_id: &str,
) -> Result<LinkTokenGetResponse, PlaidError> {
    let link_token = req.link_token.as_str();
    if !link_token.starts_with("link-") {
        return Err(errors::invalid_link_token(
            "provided link token is in an invalid format. expected format: link-<environment>-<identifier>",
        ));
    }
    let record = state
        .link_tokens
        .get(link_token)
        .ok_or_else(|| errors::invalid_link_token("could not find matching link token"))?;
    let sessions = record
        .sessions
        .iter()
        .map(|session| render_session(state, record, session))
        .collect();
    Ok(LinkTokenGetResponse {
        link_token: req.link_token.clone(),
        created_at: Some(record.created_at),
        expiration: Some(record.expires_at),
        link_sessions: Some(sessions),
        metadata: LinkTokenGetMetadata {
            initial_products: record.products.clone(),
            webhook: record.webhook.clone(),
            country_codes: record.country_codes.clone(),
            language: Some(record.language.clone()),
            redirect_uri: record.redirect_uri.clone(),
            client_name: Some(record.client_name.clone()),
        },
        user_id: None,
        request_id: request_id.to_owned(),
    })
}

fn institution_of(state: &SimState, item_id: &str) -> Option<LinkSessionInstitution> {
    state.items.get(item_id).map(|item| LinkSessionInstitution {
        name: item.institution_name.clone(),
        institution_id: item.institution_id.clone(),
    })
}

/// A session as `/link/token/get` reports it. A new Item is in `results.item_add_results`
/// with its public token; update mode adds no Item, and the spec has no result entry for it
/// (`cra_update_results` is for Plaid Check Items), so its `results` lists are empty; an exit
/// is `exit`, with the last error the user met.
fn render_session(
    state: &SimState,
    record: &LinkTokenRecord,
    session: &LinkSessionRecord,
) -> LinkTokenGetSession {
    let empty_results = |item_add_results| LinkSessionResults {
        item_add_results,
        cra_item_add_results: Vec::new(),
        cra_update_results: Vec::new(),
        bank_income_results: Vec::new(),
        payroll_income_results: Vec::new(),
        document_income_results: None,
    };
    let (results, exit) = match &session.outcome {
        Some(SessionOutcome::ItemAdded {
            item_id,
            public_token,
        }) => {
            let accounts = state
                .items
                .get(item_id)
                .map(|item| {
                    crate::sim::render::accounts(&item.data)
                        .into_iter()
                        .map(|account| crate::plaid::LinkSessionAccount {
                            id: account.account_id.to_string(),
                            name: account.name,
                            mask: account.mask,
                            account_type: account.account_type.to_string(),
                            subtype: account.subtype.map(|s| s.to_string()).unwrap_or_default(),
                            verification_status: None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            let added = LinkSessionItemAddResult {
                public_token: crate::plaid::PublicToken::new(public_token.clone()),
                accounts,
                institution: institution_of(state, item_id),
            };
            (Some(empty_results(vec![added])), None)
        }
        Some(SessionOutcome::Updated { .. }) => (Some(empty_results(Vec::new())), None),
        Some(SessionOutcome::Exited) => {
            let institution = match &record.update_item {
                Some(item_id) => institution_of(state, item_id),
                None => {
                    let id = record
                        .institution_id
                        .clone()
                        .unwrap_or_else(|| crate::sim::hosted::DEFAULT_INSTITUTION.to_owned());
                    Some(LinkSessionInstitution {
                        name: institution_name(&id),
                        institution_id: id,
                    })
                }
            };
            let exit = LinkSessionExit {
                error: session.last_error.clone(),
                metadata: Some(LinkSessionExitMetadata {
                    institution,
                    status: Some("requires_credentials".to_owned()),
                    link_session_id: Some(session.link_session_id.clone()),
                    request_id: None,
                }),
            };
            (None, Some(exit))
        }
        None => (None, None),
    };
    LinkTokenGetSession {
        link_session_id: session.link_session_id.clone(),
        started_at: Some(session.started_at),
        finished_at: session.finished_at,
        exit,
        events: Some(session.events.clone()),
        results,
    }
}

pub fn public_token_exchange(
    state: &mut SimState,
    req: ItemPublicTokenExchangeRequest,
    request_id: &str,
) -> Result<ItemPublicTokenExchangeResponse, PlaidError> {
    let public_token = req.public_token.expose_secret();
    if !public_token.starts_with("public-") {
        return Err(errors::invalid_public_token(
            "provided public token is in an invalid format. expected format: public-<environment>-<identifier>",
        ));
    }
    let record = state
        .public_tokens
        .get_mut(public_token)
        .filter(|record| !record.used)
        .ok_or_else(|| errors::invalid_public_token("could not find matching public token"))?;
    if record.expires_at < Utc::now() {
        return Err(errors::invalid_public_token(
            "provided public token is expired. Public tokens expire 30 minutes after creation at which point they can no longer be exchanged",
        ));
    }
    record.used = true;
    let item_id = record.item_id.clone();
    let item = state
        .items
        .get(&item_id)
        .ok_or_else(errors::item_not_found)?;
    Ok(ItemPublicTokenExchangeResponse {
        access_token: AccessToken::new(item.access_token.clone()),
        item_id: item_id.into(),
        request_id: request_id.to_owned(),
    })
}
