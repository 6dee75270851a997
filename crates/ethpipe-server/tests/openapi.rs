//! The OpenAPI document, generated from the handlers: it is well-formed
//! (every path parameter declared, every `$ref` defined, every response with
//! a schema), it documents exactly the API's routes and each documented
//! route answers (not the API's "no such endpoint" fallback, not 405), and a property-based
//! run driven by it — random valid and invalid path parameters, query
//! strings and bodies for every operation, from a fixed seed — never gets a
//! 5xx, only documented status codes, and 2xx bodies that match their schema.

mod common;

use std::collections::BTreeSet;

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

const CASES_PER_OPERATION: usize = 60;

/// Values that often break parsers and queries.
const NASTY: &[&str] = &[
    " ",
    "0",
    "-1",
    "1.5",
    "1e3",
    "99999999999999999999999",
    "null",
    "true",
    "[]",
    "{}",
    "'; DROP TABLE ethereum.tokens; --",
    "%",
    "_",
    "\\",
    "%00",
    "ünïcødé ✓",
    "0x",
    "0X",
    "0xZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ",
    "2024-02-30",
    "2024-3-1",
    "9999-12-31",
    "0000-01-01",
    "19000000-0xab-1",
    "NaN",
    "-0",
    "+1",
    "0x5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
];

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")],
        None => schema,
    }
}

/// The schema's type: OpenAPI 3.1 writes a nullable one as `["string", "null"]`.
fn type_of(schema: &Value) -> Option<&str> {
    match &schema["type"] {
        Value::String(t) => Some(t),
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null"),
        _ => None,
    }
}

fn nullable(schema: &Value) -> bool {
    let null_type = |s: &Value| {
        s["type"] == "null"
            || s["type"]
                .as_array()
                .is_some_and(|types| types.contains(&json!("null")))
    };
    null_type(schema)
        || schema["oneOf"]
            .as_array()
            .is_some_and(|branches| branches.iter().any(null_type))
}

/// Checks `value` against the subset of JSON Schema the document uses.
fn validate(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(doc, schema);
    if value.is_null() {
        return if nullable(schema) {
            Ok(())
        } else {
            Err(format!("{at}: null but not nullable"))
        };
    }
    if let Some(branches) = schema.get("oneOf").and_then(Value::as_array) {
        let problems: Vec<String> = branches
            .iter()
            .filter(|b| b["type"] != "null")
            .filter_map(|b| validate(doc, b, value, at).err())
            .collect();
        return if problems.len() < branches.iter().filter(|b| b["type"] != "null").count() {
            Ok(())
        } else {
            Err(problems.join("; "))
        };
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            validate(doc, s, value, at)?;
        }
        return Ok(());
    }
    if let Some(choices) = schema.get("enum").and_then(Value::as_array) {
        if !choices.contains(value) {
            return Err(format!("{at}: {value} not in {choices:?}"));
        }
    }
    match type_of(schema) {
        Some("object") => {
            let object = value.as_object().ok_or(format!("{at}: not an object"))?;
            for required in schema["required"].as_array().into_iter().flatten() {
                let name = required.as_str().unwrap();
                if !object.contains_key(name) {
                    return Err(format!("{at}: missing {name}"));
                }
            }
            for (name, sub) in schema["properties"].as_object().into_iter().flatten() {
                if let Some(v) = object.get(name) {
                    validate(doc, sub, v, &format!("{at}.{name}"))?;
                }
            }
            Ok(())
        }
        Some("array") => {
            for (i, item) in value
                .as_array()
                .ok_or(format!("{at}: not an array"))?
                .iter()
                .enumerate()
            {
                validate(doc, &schema["items"], item, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        Some("string") => {
            let text = value.as_str().ok_or(format!("{at}: not a string"))?;
            match schema.get("format").and_then(Value::as_str) {
                Some("date") if text.parse::<chrono::NaiveDate>().is_err() => {
                    Err(format!("{at}: {text} is not a date"))
                }
                Some("date-time") if chrono::DateTime::parse_from_rfc3339(text).is_err() => {
                    Err(format!("{at}: {text} is not a date-time"))
                }
                _ => Ok(()),
            }
        }
        Some("integer") if !value.is_i64() && !value.is_u64() => {
            Err(format!("{at}: not an integer"))
        }
        Some("number") if !value.is_number() => Err(format!("{at}: not a number")),
        Some("boolean") if !value.is_boolean() => Err(format!("{at}: not a boolean")),
        _ => Ok(()),
    }
}

/// A value the schema accepts (as the text a URL carries).
fn valid_text(rng: &mut StdRng, doc: &Value, schema: &Value) -> String {
    let schema = resolve(doc, schema);
    // OpenAPI 3.1 writes an optional reference as `oneOf: [null, $ref]`.
    let branches = schema["oneOf"].as_array().into_iter().flatten();
    if let Some(branch) = branches.into_iter().find(|b| b["type"] != "null") {
        return valid_text(rng, doc, branch);
    }
    if let Some(choices) = schema.get("enum").and_then(Value::as_array) {
        return choices[rng.random_range(0..choices.len())]
            .as_str()
            .unwrap()
            .to_string();
    }
    match (
        type_of(schema),
        schema["format"].as_str(),
        schema["pattern"].as_str(),
    ) {
        (Some("integer"), _, _) => {
            let min = schema["minimum"].as_i64().unwrap_or(0);
            let max = schema["maximum"].as_i64().unwrap_or(1_000_000);
            rng.random_range(min..=max).to_string()
        }
        (Some("boolean"), _, _) => rng.random_bool(0.5).to_string(),
        (_, Some("date"), _) => DAYS[rng.random_range(0..DAYS.len())].to_string(),
        (_, _, Some(p)) if p.contains("{40}") => {
            let known = token_addresses();
            if rng.random_bool(0.5) {
                known[rng.random_range(0..known.len())].clone()
            } else {
                let hex: String = (0..40)
                    .map(|_| char::from(b"0123456789abcdefABCDEF"[rng.random_range(0..22)]))
                    .collect();
                format!("0x{hex}")
            }
        }
        _ => {
            let len = rng.random_range(1..=12);
            (0..len)
                .map(|_| {
                    char::from(b"abcdefghijklmnopqrstuvwxyzTK0123456789"[rng.random_range(0..38)])
                })
                .collect()
        }
    }
}

fn invalid_text(rng: &mut StdRng) -> String {
    match rng.random_range(0..10) {
        0 => "x".repeat(rng.random_range(100..3000)),
        1 => (0..rng.random_range(1..20))
            .map(|_| char::from(rng.random_range(0x20u8..0x7f)))
            .collect(),
        _ => NASTY[rng.random_range(0..NASTY.len())].to_string(),
    }
}

fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A JSON body: valid per the schema, with some fields broken or missing, or junk.
fn body(rng: &mut StdRng, doc: &Value, schema: &Value) -> (String, bool) {
    let schema = resolve(doc, schema);
    if rng.random_bool(0.1) {
        let junk = [
            json!(null),
            json!([]),
            json!("text"),
            json!(42),
            json!({"nested": {"a": [1, 2]}}),
        ];
        return (junk[rng.random_range(0..junk.len())].to_string(), false);
    }
    let mut object = Map::new();
    let mut valid = true;
    for (name, sub) in schema["properties"].as_object().into_iter().flatten() {
        let required = schema["required"]
            .as_array()
            .is_some_and(|r| r.contains(&json!(name)));
        if !required && rng.random_bool(0.5) {
            continue;
        }
        if rng.random_bool(0.08) {
            valid = false;
            continue;
        }
        let value = if rng.random_bool(0.75) {
            let text = valid_text(rng, doc, sub);
            match type_of(resolve(doc, sub)) {
                Some("integer") => json!(text.parse::<i64>().unwrap()),
                Some("boolean") => json!(text == "true"),
                _ => json!(text),
            }
        } else {
            valid = false;
            match rng.random_range(0..4) {
                0 => json!(invalid_text(rng)),
                1 => json!(rng.random_range(-5i64..100_000)),
                2 => json!(null),
                _ => json!([1]),
            }
        };
        object.insert(name.clone(), value);
    }
    if rng.random_bool(0.05) {
        object.insert("unexpected".into(), json!(1));
        valid = false;
    }
    (Value::Object(object).to_string(), valid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_well_formed_and_covers_every_route() {
    let env = Env::start(Options {
        load: false,
        ..Options::default()
    })
    .await;
    let doc = env.get("/api/v1/openapi.json", 200).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(path.starts_with('/'), "{path}");
        let in_path: BTreeSet<String> = path
            .split('/')
            .filter(|s| s.starts_with('{'))
            .map(|s| s.trim_matches(|c| c == '{' || c == '}').to_string())
            .collect();
        for (method, op) in item.as_object().unwrap() {
            assert!(
                ["get", "post", "put"].contains(&method.as_str()),
                "{method} {path}"
            );
            documented.insert(format!("{} {path}", method.to_uppercase()));
            let declared: BTreeSet<String> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .map(|p| {
                    assert_eq!(p["required"], true, "path parameters are required");
                    p["name"].as_str().unwrap().to_string()
                })
                .collect();
            assert_eq!(in_path, declared, "{method} {path}");
            for p in op["parameters"].as_array().into_iter().flatten() {
                assert!(["path", "query"].contains(&p["in"].as_str().unwrap()));
                assert!(p["schema"].is_object());
            }
            for (code, response) in op["responses"].as_object().unwrap() {
                assert!(code.len() == 3 && code.parse::<u16>().is_ok(), "{code}");
                assert!(response["description"].is_string());
                let schema = &response["content"]["application/json"]["schema"];
                assert!(!resolve(&doc, schema).is_null(), "{method} {path} {code}");
            }
        }
    }
    // The router's API routes, all documented (openapi.json describes the rest).
    let routes = [
        "GET /pipelines",
        "GET /triggers",
        "PUT /triggers/{name}/active",
        "GET /runs",
        "POST /runs",
        "GET /runs/{id}",
        "GET /runs/{id}/logs",
        "GET /backfills",
        "POST /backfills",
        "GET /backfills/{id}",
        "GET /tokens",
        "GET /tokens/{address}",
        "GET /tokens/{address}/daily",
        "GET /tokens/{address}/top",
        "GET /addresses/{address}/transfers",
        "GET /days/{day}",
    ];
    assert_eq!(documented, routes.iter().map(|r| r.to_string()).collect());
    // Every documented route is served: a request with well-formed path
    // parameters reaches its handler (never the API's fallback, never 405).
    for route in routes {
        let (method, template) = route.split_once(' ').unwrap();
        let path = template
            .replace("{name}", "daily")
            .replace("{id}", "1")
            .replace("{address}", &token_addresses()[0])
            .replace("{day}", DAYS[0]);
        let response = env
            .http
            .request(
                method.parse().unwrap(),
                format!("{}/api/v1{path}", env.base),
            )
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_ne!(status, 405, "{route}: {text}");
        assert!(!text.contains("no such API endpoint"), "{route}: {text}");
    }
    // And the API's fallback does answer paths that are not routes.
    let (code, text) = env.get_text("/api/v1/no-such-route").await;
    assert_eq!(code, 404);
    assert!(text.contains("no such API endpoint"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_property_based_run_over_the_document_finds_no_server_errors() {
    let env = Env::start(Options::default()).await;
    let doc = env.get("/api/v1/openapi.json", 200).await;
    let mut rng = StdRng::seed_from_u64(0x0e7a_91be);
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    let mut failures = Vec::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for _ in 0..CASES_PER_OPERATION {
                let mut all_valid = true;
                let mut path = template.clone();
                let mut query = Vec::new();
                for p in op["parameters"].as_array().into_iter().flatten() {
                    let name = p["name"].as_str().unwrap();
                    let required = p["required"] == true;
                    if !required && rng.random_bool(0.4) {
                        continue;
                    }
                    let text = if rng.random_bool(0.7) {
                        valid_text(&mut rng, &doc, &p["schema"])
                    } else {
                        all_valid = false;
                        invalid_text(&mut rng)
                    };
                    if name == "cursor" {
                        all_valid = false;
                    }
                    if p["in"] == "path" {
                        path = path.replace(&format!("{{{name}}}"), &encode(&text));
                    } else {
                        query.push(format!("{name}={}", encode(&text)));
                    }
                }
                let url = format!("{}/api/v1{path}?{}", env.base, query.join("&"));
                let mut request = env
                    .http
                    .request(method.to_uppercase().parse().unwrap(), &url);
                if let Some(schema) = op["requestBody"]["content"]["application/json"].get("schema")
                {
                    let (text, valid) = body(&mut rng, &doc, schema);
                    all_valid &= valid;
                    request = request
                        .header("content-type", "application/json")
                        .body(text);
                }
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                let text = response.text().await.unwrap();
                *by_status.entry(status).or_default() += 1;
                let case = format!("{} {url}", method.to_uppercase());
                if status >= 500 {
                    failures.push(format!("{case} → {status}: {text}"));
                    continue;
                }
                // Property: input valid per the document is answered, not refused
                // (the one cross-field rule is daily's from ≤ to).
                let may_refuse = op["operationId"] == "getTokenDaily" && status == 400;
                if all_valid
                    && method == "get"
                    && op["responses"].get("404").is_none()
                    && status != 200
                    && !may_refuse
                {
                    failures.push(format!("{case} → {status} for valid input: {text}"));
                    continue;
                }
                let documented = op["responses"].get(status.to_string()).is_some();
                if !documented && status != 404 {
                    failures.push(format!("{case} → undocumented {status}: {text}"));
                    continue;
                }
                let body: Value = match serde_json::from_str(&text) {
                    Ok(body) => body,
                    Err(_) => {
                        failures.push(format!("{case} → {status} with a non-JSON body: {text}"));
                        continue;
                    }
                };
                if status >= 400 {
                    if body["error"].as_str().is_none_or(str::is_empty) {
                        failures.push(format!(
                            "{case} → {status} without an error message: {text}"
                        ));
                    }
                    continue;
                }
                let schema =
                    &op["responses"][status.to_string()]["content"]["application/json"]["schema"];
                if let Err(problem) = validate(&doc, schema, &body, "body") {
                    failures.push(format!(
                        "{case} → {status} does not match its schema: {problem}"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The run exercised both sides: accepted requests and rejected ones.
    assert!(
        by_status.get(&200).copied().unwrap_or(0) > 100,
        "{by_status:?}"
    );
    assert!(
        by_status.get(&400).copied().unwrap_or(0) > 100,
        "{by_status:?}"
    );
    eprintln!("responses by status: {by_status:?}");
}
