//! The OpenAPI 3.1 document of the management API, served at `GET /api/openapi.json`.
//!
//! Hand-written next to the handlers it describes (a test checks that every operation in it
//! answers 401 without a token, so a route missing here is noticed).

use axum::Json;
use serde_json::{json, Value};

use crate::messages::ItemStatus;

fn error_response(description: &str) -> Value {
    json!({ "description": description,
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

/// A 429: the error body, and `Retry-After` in whole seconds.
fn rate_limited(description: &str) -> Value {
    let mut response = error_response(description);
    response["headers"] = json!({ "Retry-After": {
        "description": "Seconds to wait before trying again",
        "required": true,
        "schema": { "type": "integer", "minimum": 1 } } });
    response
}

fn ok(description: &str, schema: &str) -> Value {
    json!({ "description": description,
            "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } })
}

fn body(schema: &str, required: bool) -> Value {
    json!({ "required": required,
            "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } })
}

/// An operation with the error answers every operation can give.
fn operation(summary: &str, success: (&str, Value), request: Option<Value>, item: bool) -> Value {
    let mut responses = json!({
        "400": error_response("Malformed request (`bad_request`); nothing was changed"),
        "401": error_response("Missing or wrong bearer token (`unauthorized`)"),
        "502": error_response("Plaid refused the call (`plaid_error`, with `plaid_error_code`)"),
        "503": error_response("A dependency is unavailable (`unavailable`); retry"),
    });
    responses[success.0] = success.1;
    if item {
        responses["404"] = error_response("No such Item (`not_found`)");
        responses["409"] = error_response(
            "The Item was removed (`conflict`), or Plaid refused the call because of the Item's \
             state (`plaid_error` with `plaid_error_code`, e.g. ITEM_LOGIN_REQUIRED: the user \
             must repair it first)",
        );
    }
    let mut op = json!({ "summary": summary, "responses": responses });
    if item {
        op["parameters"] = json!([{ "name": "item_id", "in": "path", "required": true,
                                     "schema": { "type": "string", "format": "uuid" } }]);
    }
    if let Some(request) = request {
        op["requestBody"] = request;
    }
    op
}

/// A string the API takes: at least one character that is not white space, at most `max`, and
/// no NUL character (PostgreSQL text cannot hold one, so the API refuses it with a 400).
fn not_blank(max: usize) -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": max,
            "pattern": "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$" })
}

/// Names every operation (`get_items_item_id`) and links the operations that create or list
/// Items to every operation on one Item, so a client (or a stateful test) can follow them.
fn with_operation_ids_and_links(mut document: Value) -> Value {
    let mut item_operations = Vec::new();
    for (path, methods) in document["paths"].as_object_mut().expect("paths") {
        for (method, operation) in methods.as_object_mut().expect("methods") {
            let name: Vec<String> = path
                .split('/')
                .filter(|s| !s.is_empty() && *s != "api" && *s != "v1")
                .map(|s| {
                    s.trim_matches(|c| c == '{' || c == '}')
                        .replace(['-', '.'], "_")
                })
                .collect();
            let id = format!("{method}_{}", name.join("_"));
            operation["operationId"] = json!(id);
            if path.contains("{item_id}") {
                item_operations.push(id);
            }
        }
    }
    let links = |expression: &str| -> Value {
        item_operations
            .iter()
            .map(|id| {
                let link = json!({ "operationId": id, "parameters": { "item_id": expression } });
                (id.clone(), link)
            })
            .collect::<serde_json::Map<String, Value>>()
            .into()
    };
    let paths = &mut document["paths"];
    // Operations that call Plaid on the caller's behalf meet Plaid's rate limits (per Item
    // and per client, e.g. ITEM_GET_LIMIT on link-success), answered 429 with Retry-After.
    for (path, method) in [
        ("/api/v1/link/token", "post"),
        ("/api/v1/link/exchange", "post"),
        ("/api/v1/items/{item_id}/link-token", "post"),
        ("/api/v1/items/{item_id}/link-success", "post"),
        ("/api/v1/items/{item_id}", "delete"),
        ("/api/v1/items/{item_id}/remove", "post"),
    ] {
        paths[path][method]["responses"]["429"] = rate_limited(
            "Plaid's rate limit on the call plaidhook makes for this request (`rate_limited`)",
        );
    }
    paths["/api/v1/link/exchange"]["post"]["responses"]["201"]["links"] =
        links("$response.body#/item_id");
    paths["/api/v1/link/exchange"]["post"]["responses"]["400"] = error_response(
        "Malformed request (`bad_request`), or a public token Plaid refuses (`plaid_error` with \
         `plaid_error_code` INVALID_PUBLIC_TOKEN); nothing was changed",
    );
    paths["/api/v1/items"]["get"]["responses"]["200"]["links"] =
        links("$response.body#/items/0/id");
    // From one Item operation to the others: what answers with the Item answers with its id.
    for (path, methods) in paths.as_object_mut().expect("paths") {
        if !path.contains("{item_id}") {
            continue;
        }
        for operation in methods.as_object_mut().expect("methods").values_mut() {
            let responses = operation["responses"].as_object_mut().expect("responses");
            for (status, response) in responses.iter_mut() {
                if !status.starts_with('2') {
                    continue;
                }
                let schema = &response["content"]["application/json"]["schema"]["$ref"];
                let expression = if schema == "#/components/schemas/Item" {
                    "$response.body#/id"
                } else {
                    "$response.body#/item_id"
                };
                response["links"] = links(expression);
            }
        }
    }
    document
}

/// The document.
pub fn spec() -> Value {
    with_operation_ids_and_links(paths_and_schemas())
}

fn paths_and_schemas() -> Value {
    let item_statuses = json!(ItemStatus::ALL.map(ItemStatus::as_str));
    let mut list = operation(
        "List Items, optionally by status, by the app's user id or by Plaid's item id",
        ("200", ok("A page of Items", "ItemList")),
        None,
        false,
    );
    list["parameters"] = json!([
        { "name": "status", "in": "query", "schema": { "type": "string", "enum": item_statuses } },
        { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 500, "default": 100 } },
        { "name": "client_user_id", "in": "query", "description": "Only the Items of this user of the app",
          "schema": not_blank(128) },
        { "name": "plaid_item_id", "in": "query", "description": "Only the Item with this Plaid item_id",
          "schema": not_blank(128) },
        { "name": "after", "in": "query", "description": "`next_after` of the previous page",
          "schema": { "type": "string", "format": "uuid" } },
    ]);
    let mut sync = operation(
        "Manual sync: /transactions/refresh, then a sync (rate-limited per Item)",
        ("202", ok("Sync requested", "SyncRequested")),
        None,
        true,
    );
    sync["responses"]["429"] = rate_limited("Too soon after the last manual sync (`rate_limited`)");
    let mut balances = operation(
        "Fetch real-time balances (/accounts/balance/get; can take 30 s or more)",
        ("200", ok("Accounts with fresh balances", "Balances")),
        None,
        true,
    );
    balances["responses"]["429"] =
        rate_limited("Plaid's balance rate limit for the Item or the client (`rate_limited`)");
    let remove = operation(
        "Remove the Item (/item/remove); its status becomes removed",
        ("200", ok("The removed Item", "Item")),
        Some(body("RemoveRequest", false)),
        true,
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "plaidhook management API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Link tokens, public-token exchange, Items and their health, balances and syncs. \
                            Every operation requires `Authorization: Bearer <token>`. Errors are \
                            `{\"error\": {\"code\", \"message\"}}` with stable codes."
        },
        "security": [{ "bearer": [] }],
        "paths": {
            "/api/openapi.json": { "get": operation("This document", ("200", json!({"description": "OpenAPI document"})), None, false) },
            "/api/v1/link/token": { "post": operation("Create a Link token for a new Item (transactions)",
                ("201", ok("Link token", "LinkToken")), Some(body("NewLinkToken", true)), false) },
            "/api/v1/link/exchange": { "post": operation(
                "Exchange Link's public token: store the Item (access token sealed, never returned) and request its first sync",
                ("201", ok("The new Item", "Exchanged")), Some(body("Exchange", true)), false) },
            "/api/v1/items": { "get": list },
            "/api/v1/items/{item_id}": {
                "get": operation("An Item with accounts, balances, last sync, open alerts and history",
                    ("200", ok("The Item", "ItemDetail")), None, true),
                "delete": remove.clone(),
            },
            "/api/v1/items/{item_id}/remove": { "post": remove },
            "/api/v1/items/{item_id}/link-token": { "post": operation(
                "Create an update-mode Link token to repair the Item",
                ("201", ok("Link token", "LinkToken")), Some(body("UpdateLinkToken", false)), true) },
            "/api/v1/items/{item_id}/link-success": { "post": operation(
                "Report that the user finished Link in update mode: reconciled with /item/get; a healthy Item becomes active, its alert resolves and it syncs",
                ("200", ok("The outcome", "LinkSuccessResult")), Some(body("LinkSuccess", false)), true) },
            "/api/v1/items/{item_id}/balances/refresh": { "post": balances },
            "/api/v1/items/{item_id}/sync": { "post": sync },
            "/api/v1/dead-letters": { "get": {
                "summary": "Messages parked in plaidhook.dead (they stay parked)",
                "parameters": [{ "name": "limit", "in": "query", "required": false,
                                 "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 20 } }],
                "responses": {
                    "200": ok("Depth and the oldest parked messages", "DeadLetters"),
                    "400": error_response("Malformed query (`bad_request`)"),
                    "401": error_response("Missing or wrong bearer token (`unauthorized`)"),
                    "503": error_response("RabbitMQ unavailable (`unavailable`)"),
                } } },
            "/api/v1/dead-letters/replay": { "post": {
                "summary": "Publish parked messages back to the queue each came from, oldest first",
                "requestBody": body("ReplayRequest", false),
                "responses": {
                    "200": ok("How many were replayed, and how many stay parked", "Replayed"),
                    "400": error_response("Malformed request (`bad_request`); nothing was changed"),
                    "401": error_response("Missing or wrong bearer token (`unauthorized`)"),
                    "503": error_response("RabbitMQ unavailable (`unavailable`)"),
                } } },
            "/api/v1/spool/parked": { "get": {
                "summary": "Spooled webhooks the broker kept refusing, parked with their reason (bodies stay in the database)",
                "parameters": [{ "name": "limit", "in": "query", "required": false,
                                 "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 20 } }],
                "responses": {
                    "200": ok("How many are parked, and the oldest of them", "ParkedSpool"),
                    "400": error_response("Malformed query (`bad_request`)"),
                    "401": error_response("Missing or wrong bearer token (`unauthorized`)"),
                    "503": error_response("Database unavailable (`unavailable`)"),
                } } },
            "/api/v1/spool/parked/replay": { "post": {
                "summary": "Put parked webhooks back in line for the spool relay, oldest first",
                "requestBody": body("ReplayRequest", false),
                "responses": {
                    "200": ok("How many were put back, and how many stay parked", "SpoolReplayed"),
                    "400": error_response("Malformed request (`bad_request`); nothing was changed"),
                    "401": error_response("Missing or wrong bearer token (`unauthorized`)"),
                    "503": error_response("Database unavailable (`unavailable`)"),
                } } },
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": schemas(item_statuses),
        }
    })
}

fn schemas(item_statuses: Value) -> Value {
    let money = json!({ "type": ["string", "null"], "description": "decimal amount" });
    let time = json!({ "type": ["string", "null"], "format": "date-time" });
    let mut schemas = json!({
        "Error": { "type": "object", "required": ["error"], "properties": { "error": {
            "type": "object", "required": ["code", "message"], "properties": {
                "code": { "type": "string", "enum": ["unauthorized", "bad_request", "forbidden", "not_found",
                          "method_not_allowed", "conflict", "rate_limited", "plaid_error",
                          "payload_too_large",
                          "unavailable", "internal"] },
                "message": { "type": "string" },
                "plaid_error_code": { "type": "string" } } } } },
        "NewLinkToken": { "type": "object", "required": ["client_user_id"], "additionalProperties": false,
            "properties": { "client_user_id": not_blank(128),
                            "days_requested": { "type": ["integer", "null"], "minimum": 1, "maximum": 730 },
                            "redirect_uri": { "type": ["string", "null"] } } },
        "UpdateLinkToken": { "type": "object", "additionalProperties": false,
            "properties": { "account_selection_enabled": { "type": ["boolean", "null"] },
                            "hosted": { "type": ["boolean", "null"],
                                        "description": "A Plaid Hosted Link URL (hosted_link_url) for the user; plaidhook learns the outcome from Plaid." } } },
        "LinkToken": { "type": "object", "properties": {
            "link_token": { "type": "string" }, "expiration": time,
            "mode": { "enum": ["new_item", "update"] }, "item_id": { "type": "string", "format": "uuid" },
            "account_selection_enabled": { "type": "boolean" },
            "hosted_link_url": { "type": "string" } } },
        "Exchange": { "type": "object", "required": ["public_token", "client_user_id"], "additionalProperties": false,
            "properties": { "public_token": not_blank(512), "client_user_id": not_blank(128) } },
        "Exchanged": { "type": "object", "properties": {
            "item_id": { "type": "string", "format": "uuid" }, "plaid_item_id": { "type": "string" },
            "status": { "type": "string" }, "first_sync_requested": { "type": "boolean" } } },
        "LinkSuccess": { "type": "object", "additionalProperties": false,
            "properties": { "link_session_id": { "type": ["string", "null"] } } },
        "LinkSuccessResult": { "type": "object", "properties": {
            "item_id": { "type": "string", "format": "uuid" },
            "previous_status": { "enum": item_statuses.clone() }, "status": { "enum": item_statuses.clone() },
            "sync_requested": { "type": "boolean" } } },
        "RemoveRequest": { "type": "object", "additionalProperties": false, "properties": {
            "reason_code": { "type": ["string", "null"] },
            "reason_note": { "type": ["string", "null"], "maxLength": 512 } } },
        "SyncRequested": { "type": "object", "properties": {
            "item_id": { "type": "string", "format": "uuid" }, "sync_requested": { "type": "boolean" } } },
        "Item": { "type": "object", "properties": {
            "id": { "type": "string", "format": "uuid" }, "plaid_item_id": { "type": "string" },
            "client_user_id": { "type": ["string", "null"] }, "institution_id": { "type": ["string", "null"] },
            "institution_name": { "type": ["string", "null"] }, "status": { "enum": item_statuses },
            "error_code": { "type": ["string", "null"] }, "error_message": { "type": ["string", "null"] },
            "consent_expires_at": time, "new_accounts_available": { "type": "boolean" },
            "last_synced_at": time, "last_webhook_at": time, "removed_at": time,
            "created_at": time, "updated_at": time } },
        "ItemList": { "type": "object", "properties": {
            "items": { "type": "array", "items": { "$ref": "#/components/schemas/Item" } },
            "next_after": { "type": ["string", "null"], "format": "uuid" } } },
        "Account": { "type": "object", "properties": {
            "account_id": { "type": "string" }, "name": { "type": "string" },
            "official_name": { "type": ["string", "null"] }, "mask": { "type": ["string", "null"] },
            "type": { "type": "string" }, "subtype": { "type": ["string", "null"] },
            "balances": { "type": "object", "properties": {
                "available": money.clone(), "current": money.clone(), "limit": money,
                "iso_currency_code": { "type": ["string", "null"] },
                "unofficial_currency_code": { "type": ["string", "null"] }, "updated_at": time } } } },
        "Balances": { "type": "object", "properties": {
            "item_id": { "type": "string", "format": "uuid" },
            "accounts": { "type": "array", "items": { "$ref": "#/components/schemas/Account" } } } },
        "ItemDetail": { "allOf": [ { "$ref": "#/components/schemas/Item" }, { "type": "object", "properties": {
            "accounts": { "type": "array", "items": { "$ref": "#/components/schemas/Account" } },
            "last_sync": { "type": ["object", "null"], "properties": {
                "id": { "type": "string" }, "trigger": { "type": "string" }, "outcome": { "type": "string" },
                "added": { "type": "integer" }, "modified": { "type": "integer" }, "removed": { "type": "integer" },
                "error_code": { "type": ["string", "null"] }, "started_at": time, "finished_at": time } },
            "open_alerts": { "type": "array", "items": { "type": "object", "properties": {
                "id": { "type": "string" }, "cause": { "type": "string" }, "error_code": { "type": ["string", "null"] },
                "message": { "type": "string" }, "raised_at": time } } },
            "history": { "type": "array", "items": { "type": "object", "properties": {
                "from_status": { "type": ["string", "null"] }, "to_status": { "type": "string" },
                "cause": { "type": "string" }, "error_code": { "type": ["string", "null"] },
                "error_message": { "type": ["string", "null"] },
                "source": { "enum": ["webhook", "api", "sync", "operator", "scheduler"] }, "at": time } } } } } ] },
    });
    schemas
        .as_object_mut()
        .expect("an object literal")
        .extend(dead_letter_schemas());
    schemas
}

pub async fn document() -> Json<Value> {
    Json(spec())
}

/// The dead-letter operations' schemas (a separate literal: one `json!` this size would exceed
/// the macro recursion limit).
fn dead_letter_schemas() -> serde_json::Map<String, Value> {
    let schemas = json!({
        "DeadLetters": { "type": "object", "properties": {
            "depth": { "type": "integer" },
            "messages": { "type": "array", "items": { "type": "object", "properties": {
                "message_id": { "type": ["string", "null"] }, "kind": { "type": ["string", "null"] },
                "from_queue": { "type": ["string", "null"] }, "reason": { "type": ["string", "null"] },
                "cause": { "type": ["string", "null"] },
                "body_preview": { "type": "string" } } } } } },
        "ReplayRequest": { "type": "object", "additionalProperties": false,
            "properties": { "limit": { "type": ["integer", "null"], "minimum": 1, "maximum": 1000,
                                       "description": "null or absent: the default" } } },
        "Replayed": { "type": "object", "properties": {
            "replayed": { "type": "integer" }, "depth": { "type": "integer" } } },
        "ParkedSpool": { "type": "object", "properties": {
            "depth": { "type": "integer" },
            "webhooks": { "type": "array", "items": { "type": "object", "properties": {
                "id": { "type": "integer" }, "webhook_id": { "type": "string", "format": "uuid" },
                "routing_key": { "type": "string" },
                "received_at": { "type": "string", "format": "date-time" },
                "attempts": { "type": "integer" }, "last_error": { "type": ["string", "null"] },
                "parked_at": { "type": ["string", "null"], "format": "date-time" } } } } } },
        "SpoolReplayed": { "type": "object", "properties": {
            "replayed": { "type": "integer" }, "depth": { "type": "integer" } } }
    });
    match schemas {
        Value::Object(map) => map,
        _ => unreachable!("an object literal"),
    }
}
