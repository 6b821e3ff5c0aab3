//! Hosted Link: the page a `hosted_link_url` opens, served by the simulator itself (Plaid
//! serves it from its own host). Small server-rendered HTML without scripts, so a plain HTTP
//! client or a headless browser can drive it: inputs `username` and `password`, the button
//! `#submit`, and `#exit` to leave.
//!
//! - `GET /hl/{id}`: starts a Link session (the first visit) and shows the institution and why
//!   the user is here (update mode: the login needs updating).
//! - `POST /hl/{id}`: the sandbox credentials `user_good` / `pass_good` finish the session;
//!   anything else shows Plaid's INVALID_CREDENTIALS message and the form again.
//! - `POST /hl/{id}/exit`: the user leaves.
//!
//! Success repairs the Item in update mode (no LOGIN_REPAIRED: the repair happened in the
//! app's own flow) or creates the Item with the token's webhook and products, then redirects
//! (303) to `completion_redirect_uri`, or shows a done page. LINK webhooks go to the token's
//! webhook: ITEM_ADD_RESULT (new Items only), EVENTS, then SESSION_FINISHED.

use super::bodies;
use super::errors;
use super::state::{LinkSessionRecord, NewItem, SessionOutcome, SimState};
use super::Sim;
use crate::plaid::webhooks::LinkSessionStatus;
use crate::plaid::{LinkEvent, LinkEventMetadata, PlaidError};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::Utc;
use serde::Deserialize;

/// The institution a new-Item session links when the token names none (a sandbox bank).
pub const DEFAULT_INSTITUTION: &str = "ins_109508";

/// Plaid's sandbox credentials.
const GOOD_USERNAME: &str = "user_good";
const GOOD_PASSWORD: &str = "pass_good";

pub fn hosted_router() -> Router<Sim> {
    Router::new()
        .route("/hl/{url_id}", get(open).post(submit))
        .route("/hl/{url_id}/exit", post(exit))
}

#[derive(Debug, Deserialize)]
struct Credentials {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// What a request to the page comes to, decided under the state lock and rendered after.
enum Outcome {
    /// The form, with the error of the last attempt if it failed.
    Form {
        view: View,
        error: Option<PlaidError>,
    },
    /// The session succeeded: redirect, or the done page.
    Done {
        view: View,
        redirect: Option<String>,
    },
    Exited {
        view: View,
    },
    /// The session had already ended (a revisit, a resubmission).
    Finished {
        view: View,
        succeeded: bool,
    },
    Expired,
    Unknown,
}

/// What the page shows about the session.
struct View {
    url_id: String,
    client_name: String,
    institution_name: String,
    update_mode: bool,
}

async fn open(State(sim): State<Sim>, Path(url_id): Path<String>) -> Response {
    let outcome = sim.with_state(|state| {
        step(state, &url_id, |state, token, view| {
            ensure_session(state, token);
            Outcome::Form { view, error: None }
        })
    });
    render(outcome)
}

async fn submit(
    State(sim): State<Sim>,
    Path(url_id): Path<String>,
    Form(credentials): Form<Credentials>,
) -> Response {
    let outcome = sim.with_state(|state| {
        step(state, &url_id, |state, token, view| {
            ensure_session(state, token);
            record_event(state, token, "SUBMIT_CREDENTIALS", None);
            if credentials.username != GOOD_USERNAME || credentials.password != GOOD_PASSWORD {
                let error = errors::invalid_credentials();
                record_event(state, token, "ERROR", Some(&error));
                if let Some(session) = open_session(state, token) {
                    session.last_error = Some(error.clone());
                }
                return Outcome::Form {
                    view,
                    error: Some(error),
                };
            }
            let redirect = succeed(state, token);
            Outcome::Done { view, redirect }
        })
    });
    render(outcome)
}

async fn exit(State(sim): State<Sim>, Path(url_id): Path<String>) -> Response {
    let outcome = sim.with_state(|state| {
        step(state, &url_id, |state, token, view| {
            ensure_session(state, token);
            record_event(state, token, "EXIT", None);
            finish(state, token, SessionOutcome::Exited);
            Outcome::Exited { view }
        })
    });
    render(outcome)
}

/// Find the URL's link token and run `act` on a live, unfinished session; otherwise say why not.
fn step(
    state: &mut SimState,
    url_id: &str,
    act: impl FnOnce(&mut SimState, &str, View) -> Outcome,
) -> Outcome {
    let Some((token, record)) = state.link_tokens.iter().find(|(_, record)| {
        record
            .hosted_link
            .as_ref()
            .is_some_and(|hosted| hosted.url_id == url_id)
    }) else {
        return Outcome::Unknown;
    };
    let token = token.clone();
    let (institution_id, update_mode) = match &record.update_item {
        Some(item_id) => (
            state
                .items
                .get(item_id)
                .map(|item| item.institution_id.clone())
                .unwrap_or_else(|| DEFAULT_INSTITUTION.to_owned()),
            true,
        ),
        None => (
            record
                .institution_id
                .clone()
                .unwrap_or_else(|| DEFAULT_INSTITUTION.to_owned()),
            false,
        ),
    };
    let view = View {
        url_id: url_id.to_owned(),
        client_name: record.client_name.clone(),
        institution_name: super::catalog::institution_name(&institution_id),
        update_mode,
    };
    if let Some(last) = record.sessions.last() {
        if let Some(outcome) = &last.outcome {
            let succeeded = !matches!(outcome, SessionOutcome::Exited);
            return Outcome::Finished { view, succeeded };
        }
    }
    if record.expires_at < Utc::now() {
        return Outcome::Expired;
    }
    act(state, &token, view)
}

/// The token's open session, started (with its OPEN event) on the first visit.
fn ensure_session(state: &mut SimState, token: &str) {
    let Some(record) = state.link_tokens.get_mut(token) else {
        return;
    };
    if record.sessions.last().is_some_and(|s| s.outcome.is_none()) {
        return;
    }
    record.sessions.push(LinkSessionRecord {
        link_session_id: uuid::Uuid::new_v4().to_string(),
        started_at: Utc::now(),
        finished_at: None,
        events: Vec::new(),
        last_error: None,
        outcome: None,
    });
    record_event(state, token, "OPEN", None);
}

fn open_session<'a>(state: &'a mut SimState, token: &str) -> Option<&'a mut LinkSessionRecord> {
    state
        .link_tokens
        .get_mut(token)?
        .sessions
        .last_mut()
        .filter(|session| session.outcome.is_none())
}

/// Append a Link event to the open session, with the institution and any error.
fn record_event(state: &mut SimState, token: &str, name: &str, error: Option<&PlaidError>) {
    let institution_id = state.link_tokens.get(token).map(|record| {
        match &record.update_item {
            Some(item_id) => state.items.get(item_id).map(|i| i.institution_id.clone()),
            None => record.institution_id.clone(),
        }
        .unwrap_or_else(|| DEFAULT_INSTITUTION.to_owned())
    });
    let Some(session) = open_session(state, token) else {
        return;
    };
    let institution_name = institution_id
        .as_deref()
        .map(super::catalog::institution_name);
    session.events.push(LinkEvent {
        event_name: name.to_owned(),
        timestamp: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        event_id: uuid::Uuid::new_v4().to_string(),
        event_metadata: LinkEventMetadata {
            error_code: error.map(|e| e.error_code.to_string()),
            error_message: error.map(|e| e.error_message.clone()),
            error_type: error.map(|e| e.error_type.to_string()),
            exit_status: (name == "EXIT").then(|| "requires_credentials".to_owned()),
            institution_id,
            institution_name,
            request_id: None,
            view_name: None,
        },
    });
}

/// The user got through: repair or create the Item, finish the session; returns where to
/// redirect.
fn succeed(state: &mut SimState, token: &str) -> Option<String> {
    let record = state.link_tokens.get(token)?.clone();
    let outcome = match &record.update_item {
        Some(item_id) => {
            // The in-app repair: the error clears and no LOGIN_REPAIRED is sent.
            state.complete_update_mode(item_id);
            SessionOutcome::Updated {
                item_id: item_id.clone(),
            }
        }
        None => {
            let item_id = state.create_item(NewItem {
                institution_id: Some(
                    record
                        .institution_id
                        .clone()
                        .unwrap_or_else(|| DEFAULT_INSTITUTION.to_owned()),
                ),
                webhook: record.webhook.clone(),
                products: record.products.clone(),
                days_requested: Some(record.days_requested),
                transactions: None,
                history_ends: None,
            });
            let public_token = state.issue_public_token(&item_id);
            SessionOutcome::ItemAdded {
                item_id,
                public_token,
            }
        }
    };
    record_event(state, token, "HANDOFF", None);
    finish(state, token, outcome);
    record.hosted_link?.completion_redirect_uri
}

/// Close the open session with `outcome` and send the LINK webhooks, in the order the docs
/// list them: ITEM_ADD_RESULT (a new Item), EVENTS, SESSION_FINISHED. Delivery, as every
/// webhook's, is concurrent: receivers must not rely on the order.
fn finish(state: &mut SimState, token: &str, outcome: SessionOutcome) {
    let environment = state.config.environment.clone();
    let Some(record) = state.link_tokens.get_mut(token) else {
        return;
    };
    let webhook = record.webhook.clone();
    let Some(session) = record
        .sessions
        .last_mut()
        .filter(|session| session.outcome.is_none())
    else {
        return;
    };
    session.finished_at = Some(Utc::now());
    session.outcome = Some(outcome.clone());
    let session = session.clone();
    let Some(url) = webhook else {
        return;
    };
    let id = &session.link_session_id;
    let public_token = match &outcome {
        SessionOutcome::ItemAdded { public_token, .. } => Some(public_token.as_str()),
        _ => None,
    };
    if let Some(public_token) = public_token {
        state.emit_to(
            &url,
            ("LINK", "ITEM_ADD_RESULT"),
            bodies::item_add_result(&environment, id, token, public_token),
        );
    }
    state.emit_to(
        &url,
        ("LINK", "EVENTS"),
        bodies::link_events(id, token, &session.events),
    );
    let status = match outcome {
        SessionOutcome::Exited => LinkSessionStatus::Exited,
        _ => LinkSessionStatus::Success,
    };
    state.emit_to(
        &url,
        ("LINK", "SESSION_FINISHED"),
        bodies::session_finished(&environment, status, id, token, public_token),
    );
}

fn render(outcome: Outcome) -> Response {
    match outcome {
        Outcome::Form { view, error } => {
            let reason = if view.update_mode {
                format!(
                    "Your login to {} needs to be updated. Sign in again so {} can keep accessing your accounts.",
                    escape(&view.institution_name),
                    escape(&view.client_name)
                )
            } else {
                format!(
                    "{} uses Plaid to connect your {} accounts.",
                    escape(&view.client_name),
                    escape(&view.institution_name)
                )
            };
            let error = error.map_or_else(String::new, |error| {
                format!(
                    "<p id=\"error\" role=\"alert\" data-error-code=\"{}\">{}</p>\n",
                    escape(error.error_code.as_str()),
                    escape(error.display_message.as_deref().unwrap_or_default())
                )
            });
            let url_id = escape(&view.url_id);
            page(
                StatusCode::OK,
                &view.institution_name,
                &format!(
                    "<h1>{institution}</h1>\n<p id=\"reason\">{reason}</p>\n{error}\
                     <form method=\"post\" action=\"/hl/{url_id}\">\n\
                     <label for=\"username\">Username</label>\n\
                     <input id=\"username\" name=\"username\" autocomplete=\"username\" required>\n\
                     <label for=\"password\">Password</label>\n\
                     <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\n\
                     <button id=\"submit\" type=\"submit\">Submit</button>\n</form>\n\
                     <form method=\"post\" action=\"/hl/{url_id}/exit\">\n\
                     <button id=\"exit\" type=\"submit\" formnovalidate>Exit</button>\n</form>\n\
                     <p><small>Sandbox: username <code>user_good</code>, password <code>pass_good</code>.</small></p>",
                    institution = escape(&view.institution_name),
                ),
            )
        }
        Outcome::Done {
            redirect: Some(uri), ..
        } => (StatusCode::SEE_OTHER, [(header::LOCATION, uri)]).into_response(),
        Outcome::Done { view, .. }
        | Outcome::Finished {
            view,
            succeeded: true,
        } => page(
            StatusCode::OK,
            "Success",
            &format!(
                "<h1 id=\"done\">Success</h1>\n<p>Your {} account is connected to {}. You can close this window.</p>",
                escape(&view.institution_name),
                escape(&view.client_name)
            ),
        ),
        Outcome::Exited { view }
        | Outcome::Finished {
            view,
            succeeded: false,
        } => page(
            StatusCode::OK,
            "Session ended",
            &format!(
                "<h1 id=\"exited\">Session ended</h1>\n<p>You left without connecting your account. Return to {} to try again.</p>",
                escape(&view.client_name)
            ),
        ),
        Outcome::Expired => {
            let error = errors::invalid_link_token("link token has expired");
            page(
                StatusCode::BAD_REQUEST,
                "Link expired",
                &format!(
                    "<h1>This link has expired</h1>\n<p id=\"error\" role=\"alert\" data-error-code=\"{code}\">\
                     <code>{code}</code>: {message}. Ask for a new link.</p>",
                    code = error.error_code.as_str(),
                    message = escape(&error.error_message),
                ),
            )
        }
        Outcome::Unknown => page(
            StatusCode::NOT_FOUND,
            "Not found",
            "<h1>Not found</h1>\n<p>No Hosted Link session here.</p>",
        ),
    }
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} · Plaid (simulator)</title>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n",
        escape(title)
    );
    (status, Html(html)).into_response()
}

/// HTML-escape text from requests (client name, institution name).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
