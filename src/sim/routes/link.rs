//! `/link/token/create` (new Items and update mode) and `/item/public_token/exchange`.

use crate::plaid::{
    AccessToken, ItemPublicTokenExchangeRequest, ItemPublicTokenExchangeResponse, LinkToken,
    LinkTokenCreateRequest, LinkTokenCreateResponse, PlaidError,
};
use crate::sim::errors;
use crate::sim::ids::token;
use crate::sim::state::{LinkTokenRecord, SimState};
use chrono::{Duration, Utc};

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
        return Err(errors::invalid_field(
            "products must contain at least one product unless access_token is set (update mode)",
        ));
    }
    let lifetime = if update_item.is_some() {
        Duration::minutes(30)
    } else {
        Duration::hours(4)
    };
    let expires_at = Utc::now() + lifetime;
    let link_token = token(&mut rand::rngs::OsRng, "link", &state.config.environment);
    let days_requested = req.transactions.as_ref().and_then(|t| t.days_requested);
    if days_requested.is_some_and(|days| !(1..=730).contains(&days)) {
        return Err(errors::invalid_field(
            "transactions.days_requested must be between 1 and 730",
        ));
    }
    state.link_tokens.insert(
        link_token.clone(),
        LinkTokenRecord {
            expires_at,
            webhook: req.webhook.clone(),
            products,
            days_requested: days_requested.unwrap_or(state.config.default_days_requested),
            update_item,
        },
    );
    Ok(LinkTokenCreateResponse {
        link_token: LinkToken::new(link_token),
        expiration: expires_at.with_timezone(&Utc),
        request_id: request_id.to_owned(),
        hosted_link_url: None,
    })
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
