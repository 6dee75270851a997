//! The OpenAPI 3.0 document served at `/api/v1/openapi.json`, written by
//! hand next to the handlers it describes. Tests check that every route is
//! documented, that every `$ref` resolves, and that real responses match
//! their schemas; a property-based run drives the API from this document.

use serde_json::{json, Map, Value};

fn string() -> Value {
    json!({ "type": "string" })
}

fn nullable_string() -> Value {
    json!({ "type": "string", "nullable": true })
}

fn integer() -> Value {
    json!({ "type": "integer", "format": "int64" })
}

fn nullable_integer() -> Value {
    json!({ "type": "integer", "format": "int64", "nullable": true })
}

/// A decimal number written as text (exact uint256 values and sums).
fn decimal(nullable: bool) -> Value {
    json!({ "type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$", "nullable": nullable })
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn array(items: Value) -> Value {
    json!({ "type": "array", "items": items })
}

/// An object whose every listed property is required.
fn object(properties: &[(&str, Value)]) -> Value {
    let mut props = Map::new();
    for (name, schema) in properties {
        props.insert((*name).to_string(), schema.clone());
    }
    let required: Vec<&str> = properties.iter().map(|(n, _)| *n).collect();
    json!({ "type": "object", "required": required, "properties": props })
}

fn path_param(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": schema })
}

fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

fn address_param() -> Value {
    path_param(
        "address",
        "0x followed by 40 hex digits (any case)",
        json!({ "type": "string", "pattern": "^0[xX][0-9a-fA-F]{40}$" }),
    )
}

fn limit_param(default: u32, max: u32) -> Value {
    query_param(
        "limit",
        &format!("rows per page, 1 to {max}"),
        json!({ "type": "integer", "minimum": 1, "maximum": max, "default": default }),
    )
}

fn date_schema() -> Value {
    json!({ "type": "string", "format": "date", "example": "2024-03-01" })
}

fn ok(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

fn error(description: &str) -> Value {
    ok(description, reference("Error"))
}

/// Responses every read endpoint may give besides its success.
fn read_responses(success: Value, not_found: bool) -> Value {
    let mut responses = json!({
        "200": success,
        "400": error("invalid input; the message says what is expected"),
        "503": error("the database is unreachable or the query ran past the statement timeout")
    });
    if not_found {
        responses["404"] = error("no such object");
    }
    responses
}

fn mutation_responses(success_code: &str, success: Value) -> Value {
    let mut responses = json!({
        "400": error("invalid input"),
        "401": error("missing or wrong bearer token (required when the server has ETHPIPE_API_TOKEN)"),
        "403": error("no token is configured and the Host is not loopback (DNS rebinding protection)"),
        "409": error("conflicts with work in progress"),
        "413": error("body too large"),
        "415": error("the body is not application/json"),
        "503": error("the database is unreachable, or the server has no source to run with")
    });
    responses[success_code] = success;
    responses
}

fn json_body(schema: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema } } })
}

fn schemas() -> Value {
    let run = object(&[
        ("id", integer()),
        (
            "pipeline",
            json!({ "type": "string", "enum": ["token_transfers", "tokens"] }),
        ),
        (
            "day",
            json!({ "type": "string", "format": "date", "nullable": true }),
        ),
        ("trigger", string()),
        ("source", string()),
        (
            "status",
            json!({ "type": "string", "enum": ["running", "success", "failed"] }),
        ),
        ("attempt", json!({ "type": "integer" })),
        ("rows_written", nullable_integer()),
        ("source_rows", nullable_integer()),
        ("skipped_rows", nullable_integer()),
        (
            "started_at",
            json!({ "type": "string", "format": "date-time" }),
        ),
        (
            "finished_at",
            json!({ "type": "string", "format": "date-time", "nullable": true }),
        ),
        (
            "duration_seconds",
            json!({ "type": "number", "nullable": true }),
        ),
        ("error", nullable_string()),
    ]);
    let trigger = object(&[
        ("name", string()),
        ("pipeline", string()),
        ("schedule", string()),
        ("active", json!({ "type": "boolean" })),
        ("day_offset", json!({ "type": "integer" })),
        ("max_attempts", json!({ "type": "integer" })),
        (
            "last_slot",
            json!({ "type": "string", "format": "date-time", "nullable": true }),
        ),
        (
            "next_run",
            json!({ "type": "string", "format": "date-time", "nullable": true }),
        ),
    ]);
    let mut pipeline = object(&[
        ("pipeline", string()),
        ("days_loaded", integer()),
        (
            "first_day",
            json!({ "type": "string", "format": "date", "nullable": true }),
        ),
        (
            "last_day",
            json!({ "type": "string", "format": "date", "nullable": true }),
        ),
        ("gap_days", integer()),
        ("rows_loaded", integer()),
        ("running", integer()),
        (
            "last_run",
            json!({ "allOf": [reference("Run")], "nullable": true }),
        ),
        ("triggers", array(reference("Trigger"))),
    ]);
    pipeline["properties"]["full_load_done"] =
        json!({ "type": "boolean", "description": "tokens only" });
    let backfill = object(&[
        ("id", integer()),
        ("pipeline", string()),
        ("from", date_schema()),
        ("to", date_schema()),
        ("parallel", json!({ "type": "integer" })),
        ("force", json!({ "type": "boolean" })),
        (
            "state",
            json!({ "type": "string", "enum": ["running", "finished", "failed", "interrupted"] }),
        ),
        ("days_planned", integer()),
        ("days_loaded", integer()),
        ("days_skipped", integer()),
        ("days_failed", integer()),
        ("rows", integer()),
        (
            "started_at",
            json!({ "type": "string", "format": "date-time" }),
        ),
        (
            "finished_at",
            json!({ "type": "string", "format": "date-time", "nullable": true }),
        ),
        ("error", nullable_string()),
    ]);
    json!({
        "Error": object(&[("error", string())]),
        "Run": run,
        "Step": object(&[
            ("position", json!({ "type": "integer" })),
            ("name", string()),
            ("status", string()),
            ("rows", nullable_integer()),
            ("started_at", json!({ "type": "string", "format": "date-time" })),
            ("finished_at", json!({ "type": "string", "format": "date-time" })),
            ("error", nullable_string()),
        ]),
        "LogLine": object(&[
            ("id", integer()),
            ("at", json!({ "type": "string", "format": "date-time" })),
            ("level", string()),
            ("message", string()),
        ]),
        "Trigger": trigger,
        "PipelineSummary": pipeline,
        "Backfill": backfill,
        "Token": object(&[
            ("address", string()),
            ("symbol", nullable_string()),
            ("name", nullable_string()),
            ("decimals", decimal(true)),
            ("total_supply", decimal(true)),
            ("total_supply_scaled", decimal(true)),
            ("block_number", integer()),
            ("block_timestamp", json!({ "type": "string", "format": "date-time" })),
            ("deployments", integer()),
            ("found_in_transfers", json!({ "type": "boolean" })),
        ]),
        "TokenHit": object(&[
            ("address", string()),
            ("symbol", nullable_string()),
            ("name", nullable_string()),
            ("decimals", decimal(true)),
        ]),
        "DailyStat": object(&[
            ("day", date_schema()),
            ("transfer_count", integer()),
            ("unique_senders", integer()),
            ("unique_receivers", integer()),
            ("volume_raw", decimal(false)),
            ("volume", decimal(true)),
        ]),
        "Counterparty": object(&[
            ("address", string()),
            ("transfers", integer()),
            ("volume_raw", decimal(false)),
            ("volume", decimal(true)),
        ]),
        "Transfer": object(&[
            ("token_address", string()),
            ("symbol", nullable_string()),
            ("decimals", decimal(true)),
            ("from_address", nullable_string()),
            ("to_address", nullable_string()),
            ("value", decimal(true)),
            ("amount", decimal(true)),
            ("transaction_hash", string()),
            ("log_index", integer()),
            ("block_number", integer()),
            ("block_timestamp", json!({ "type": "string", "format": "date-time" })),
            ("direction", json!({ "type": "string", "enum": ["in", "out", "self"] })),
        ]),
        "TransferPage": object(&[
            ("address", string()),
            ("direction", json!({ "type": "string", "enum": ["in", "out", "both"] })),
            ("transfers", array(reference("Transfer"))),
            ("next_cursor", nullable_string()),
        ]),
        "DayToken": object(&[
            ("token_address", string()),
            ("symbol", nullable_string()),
            ("name", nullable_string()),
            ("decimals", decimal(true)),
            ("transfer_count", integer()),
            ("unique_senders", integer()),
            ("unique_receivers", integer()),
            ("volume", decimal(true)),
        ]),
        "DayOverview": object(&[
            ("day", date_schema()),
            ("tokens", integer()),
            ("transfers", integer()),
            ("top_tokens", array(reference("DayToken"))),
        ])
    })
}

/// The document, as JSON.
pub fn document() -> Value {
    let pipeline_enum = json!({ "type": "string", "enum": ["token_transfers", "tokens"] });
    let run_id = path_param(
        "id",
        "run id",
        json!({ "type": "integer", "format": "int64", "minimum": 1 }),
    );
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "ethpipe API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Pipelines, runs and logs of ethpipe, and the token data it loaded (tokens, transfers, daily statistics). Amounts are exact decimal strings. Mutations need `Authorization: Bearer <ETHPIPE_API_TOKEN>` when the server has a token (always when it listens beyond loopback)."
        },
        "servers": [{ "url": "/api/v1" }],
        "components": {
            "schemas": schemas(),
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } }
        },
        "paths": {
            "/pipelines": { "get": {
                "operationId": "listPipelines",
                "summary": "Each pipeline: days loaded, rows, last run, triggers; and backfills started here",
                "responses": read_responses(ok("pipelines", object(&[
                    ("pipelines", array(reference("PipelineSummary"))),
                    ("backfills", array(reference("Backfill"))),
                    ("can_run", json!({ "type": "boolean" })),
                    ("token_required", json!({ "type": "boolean" })),
                ])), false)
            }},
            "/triggers": { "get": {
                "operationId": "listTriggers",
                "summary": "Triggers with their toggle and next run",
                "responses": read_responses(ok("triggers", object(&[("triggers", array(reference("Trigger")))])), false)
            }},
            "/triggers/{name}/active": { "put": {
                "operationId": "setTriggerActive",
                "summary": "Turn a trigger on or off (persisted in the database)",
                "security": [{ "bearer": [] }],
                "parameters": [path_param("name", "trigger name", json!({ "type": "string", "minLength": 1, "maxLength": 200 }))],
                "requestBody": json_body(object(&[("active", json!({ "type": "boolean" }))])),
                "responses": {
                    "200": ok("the new state", object(&[("name", string()), ("active", json!({ "type": "boolean" }))])),
                    "400": error("invalid input"),
                    "401": error("missing or wrong bearer token"),
                    "403": error("no token is configured and the Host is not loopback"),
                    "404": error("no such trigger"),
                    "413": error("body too large"),
                    "415": error("the body is not application/json"),
                    "503": error("the database is unreachable")
                }
            }},
            "/runs": {
                "get": {
                    "operationId": "listRuns",
                    "summary": "Run history, newest first (keyset pages by id)",
                    "parameters": [
                        query_param("pipeline", "only this pipeline", pipeline_enum.clone()),
                        query_param("status", "only runs in this state", json!({ "type": "string", "enum": ["running", "success", "failed"] })),
                        query_param("trigger", "only runs started by this trigger (manual, dashboard, backfill, a trigger's name)", json!({ "type": "string", "minLength": 1, "maxLength": 200 })),
                        query_param("before", "next_before of the previous page", json!({ "type": "integer", "format": "int64", "minimum": 1 })),
                        limit_param(20, 100)
                    ],
                    "responses": read_responses(ok("runs", object(&[
                        ("runs", array(reference("Run"))),
                        ("next_before", nullable_integer()),
                    ])), false)
                },
                "post": {
                    "operationId": "startRun",
                    "summary": "Load one UTC day of a pipeline now, in the server process",
                    "security": [{ "bearer": [] }],
                    "requestBody": json_body(object(&[("pipeline", pipeline_enum.clone()), ("day", date_schema())])),
                    "responses": mutation_responses("202", ok("the run started; follow it at url", object(&[
                        ("run_id", integer()),
                        ("pipeline", string()),
                        ("day", date_schema()),
                        ("url", string()),
                    ])))
                }
            },
            "/runs/{id}": { "get": {
                "operationId": "getRun",
                "summary": "One run with its steps",
                "parameters": [run_id.clone()],
                "responses": read_responses(ok("the run", object(&[("run", reference("Run")), ("steps", array(reference("Step")))])), true)
            }},
            "/runs/{id}/logs": { "get": {
                "operationId": "getRunLogs",
                "summary": "A run's log lines after a given line, oldest first",
                "parameters": [
                    run_id,
                    query_param("after", "next_after of the previous call (0 = from the start)", json!({ "type": "integer", "format": "int64", "minimum": 0 })),
                    limit_param(200, 1000)
                ],
                "responses": read_responses(ok("log lines", object(&[
                    ("run_id", integer()),
                    ("logs", array(reference("LogLine"))),
                    ("next_after", integer()),
                ])), true)
            }},
            "/backfills": {
                "get": {
                    "operationId": "listBackfills",
                    "summary": "Backfills started from this server, and recent runs of any backfill",
                    "responses": read_responses(ok("backfills", object(&[
                        ("backfills", array(reference("Backfill"))),
                        ("recent_runs", array(reference("Run"))),
                    ])), false)
                },
                "post": {
                    "operationId": "startBackfill",
                    "summary": "Load a range of days in the background (skips loaded days unless force)",
                    "security": [{ "bearer": [] }],
                    "requestBody": json_body({
                        let mut body = object(&[("pipeline", pipeline_enum), ("from", date_schema()), ("to", date_schema())]);
                        body["properties"]["parallel"] = json!({ "type": "integer", "minimum": 1, "maximum": 16, "default": 1 });
                        body["properties"]["force"] = json!({ "type": "boolean", "default": false });
                        body
                    }),
                    "responses": mutation_responses("202", ok("the backfill started", reference("Backfill")))
                }
            },
            "/backfills/{id}": { "get": {
                "operationId": "getBackfill",
                "summary": "A backfill started from this server",
                "parameters": [path_param("id", "backfill id", json!({ "type": "integer", "format": "int64", "minimum": 1 }))],
                "responses": read_responses(ok("the backfill", reference("Backfill")), true)
            }},
            "/tokens": { "get": {
                "operationId": "searchTokens",
                "summary": "Tokens by symbol or name (case-insensitive, contains) or address prefix",
                "parameters": [
                    { "name": "q", "in": "query", "required": true, "description": "1 to 100 characters", "schema": { "type": "string", "minLength": 1, "maxLength": 100 } },
                    limit_param(20, 100)
                ],
                "responses": read_responses(ok("matches, best first", object(&[("q", string()), ("tokens", array(reference("TokenHit")))])), false)
            }},
            "/tokens/{address}": { "get": {
                "operationId": "getToken",
                "summary": "A token's metadata (its latest deployment)",
                "parameters": [address_param()],
                "responses": read_responses(ok("the token", reference("Token")), true)
            }},
            "/tokens/{address}/daily": { "get": {
                "operationId": "getTokenDaily",
                "summary": "Daily statistics of a token (token_daily_stats), oldest first",
                "parameters": [
                    address_param(),
                    query_param("from", "first day (inclusive)", date_schema()),
                    query_param("to", "last day (inclusive)", date_schema()),
                    limit_param(365, 3660)
                ],
                "responses": read_responses(ok("days", object(&[("token_address", string()), ("days", array(reference("DailyStat")))])), false)
            }},
            "/tokens/{address}/top": { "get": {
                "operationId": "getTokenTop",
                "summary": "Top senders and receivers of a token on a day, by number of transfers",
                "parameters": [
                    address_param(),
                    query_param("day", "the day (default: the token's latest day with statistics)", date_schema()),
                    limit_param(10, 100)
                ],
                "responses": read_responses(ok("counterparties", object(&[
                    ("token_address", string()),
                    ("day", json!({ "type": "string", "format": "date", "nullable": true })),
                    ("senders", array(reference("Counterparty"))),
                    ("receivers", array(reference("Counterparty"))),
                ])), false)
            }},
            "/addresses/{address}/transfers": { "get": {
                "operationId": "getAddressTransfers",
                "summary": "An address's transfers, newest first, in keyset pages",
                "parameters": [
                    address_param(),
                    query_param("direction", "in, out or both", json!({ "type": "string", "enum": ["in", "out", "both"], "default": "both" })),
                    query_param("cursor", "next_cursor of the previous page", json!({ "type": "string" })),
                    limit_param(25, 100)
                ],
                "responses": read_responses(ok("a page", reference("TransferPage")), false)
            }},
            "/days/{day}": { "get": {
                "operationId": "getDay",
                "summary": "A day's totals and its most transferred tokens",
                "parameters": [path_param("day", "UTC day", date_schema()), limit_param(20, 100)],
                "responses": read_responses(ok("the day", reference("DayOverview")), false)
            }}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` in the document points at a schema it defines.
    #[test]
    fn references_resolve() {
        let doc = document();
        let mut refs = Vec::new();
        fn walk(value: &Value, refs: &mut Vec<String>) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(r)) = map.get("$ref") {
                        refs.push(r.clone());
                    }
                    map.values().for_each(|v| walk(v, refs));
                }
                Value::Array(items) => items.iter().for_each(|v| walk(v, refs)),
                _ => {}
            }
        }
        walk(&doc, &mut refs);
        assert!(refs.len() > 10);
        for r in refs {
            let name = r.trim_start_matches("#/components/schemas/");
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "{r} does not resolve"
            );
        }
    }

    #[test]
    fn every_operation_has_an_id_and_responses() {
        let doc = document();
        let mut ids = std::collections::BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{method} {path}"));
                assert!(ids.insert(id.to_string()), "duplicate operationId {id}");
                assert!(!op["responses"].as_object().unwrap().is_empty());
            }
        }
        assert_eq!(ids.len(), 16);
    }
}
