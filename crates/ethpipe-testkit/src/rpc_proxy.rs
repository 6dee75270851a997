//! A fault-injecting HTTP proxy in front of a JSON-RPC node (anvil), whose
//! faults a test switches at runtime:
//!
//! - an HTTP status instead of the answer (429 with `Retry-After: 1`, 500, 503);
//! - the connection closed without any response;
//! - a truncated body (full `Content-Length`, half the bytes, then close);
//! - a delay before forwarding (beyond the client's timeout);
//! - a JSON-RPC error object (e.g. `{"code":-32005,"message":"rate limit exceeded"}`)
//!   in place of the result;
//! - `eth_getLogs` answers with more than N logs replaced by the provider's
//!   "too many results" error ([`LogLimitWording`]);
//! - "stay down": every request fails until the test says otherwise;
//! - a hold: requests with a matching call wait until the test releases them
//!   ([`RpcProxy::hold_after`]), so a test can change the chain at an exact
//!   point of a run (e.g. reorganise it between extraction and commit).
//!
//! Faults are queued: [`RpcProxy::fail_next`]`(k, fault)` hits the next `k`
//! HTTP requests (optionally only those containing a matching call, see
//! [`Match`]). A batch (a JSON array) is one HTTP request: HTTP-level faults
//! hit the whole batch, a JSON-RPC error replaces only the matching elements.
//! Every request is counted per method, and every injected fault per kind, so
//! tests can assert that retries happened.
//!
//! The proxy speaks HTTP/1.1 over plain sockets itself (keep-alive, requests
//! with `Content-Length` or chunked bodies), because dropping a connection
//! mid-exchange and sending a body shorter than its `Content-Length` are
//! things an HTTP framework will not do on purpose.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::http::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Largest request body the proxy accepts.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// One injected fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// This HTTP status instead of the answer; 429 comes with `Retry-After: 1`
    /// and a JSON body, 5xx with a text body. The node never sees the request.
    Status(u16),
    /// Read the request, then close the connection without a response.
    Drop,
    /// Forward, then send the status line and headers with the whole
    /// `Content-Length` but only the first half of the body, and close.
    Truncate,
    /// Wait this long, then forward as usual.
    Delay(Duration),
    /// Answer with this JSON-RPC error object (HTTP 200) instead of forwarding.
    RpcError { code: i64, message: String },
}

impl Fault {
    /// HTTP 429 Too Many Requests with `Retry-After: 1`.
    pub fn too_many_requests() -> Fault {
        Fault::Status(429)
    }

    /// The JSON-RPC error `{"code":-32005,"message":"rate limit exceeded"}`.
    pub fn rate_limit_error() -> Fault {
        Fault::RpcError {
            code: -32005,
            message: "rate limit exceeded".to_string(),
        }
    }

    /// The name its hits are counted under: `http_429`, `drop`, `truncate`,
    /// `delay`, `rpc_error`.
    pub fn kind(&self) -> String {
        match self {
            Fault::Status(code) => format!("http_{code}"),
            Fault::Drop => "drop".to_string(),
            Fault::Truncate => "truncate".to_string(),
            Fault::Delay(_) => "delay".to_string(),
            Fault::RpcError { .. } => "rpc_error".to_string(),
        }
    }
}

/// Which requests a fault applies to: all by default; a method; and/or a
/// substring of the params' JSON (e.g. a selector such as `"0x18160ddd"`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Match {
    pub method: Option<String>,
    pub params_contain: Option<String>,
}

impl Match {
    pub fn any() -> Match {
        Match::default()
    }

    pub fn method(method: &str) -> Match {
        Match {
            method: Some(method.to_string()),
            params_contain: None,
        }
    }

    /// Also require this text in the params' JSON (compared in lower case).
    pub fn params_containing(mut self, text: &str) -> Match {
        self.params_contain = Some(text.to_lowercase());
        self
    }

    fn matches(&self, call: &Value) -> bool {
        let method_ok = self
            .method
            .as_deref()
            .is_none_or(|m| call["method"].as_str() == Some(m));
        let params_ok = self
            .params_contain
            .as_deref()
            .is_none_or(|text| call["params"].to_string().to_lowercase().contains(text));
        method_ok && params_ok
    }
}

/// How a provider words "too many logs" for `eth_getLogs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLimitWording {
    /// Infura / geth-style: `{"code":-32005,"message":"query returned more than N results"}`.
    QueryReturnedMore,
    /// Alchemy-style: `{"code":-32602,"message":"Log response size exceeded. …"}`.
    ResponseSizeExceeded,
}

impl LogLimitWording {
    fn error(self, max: usize) -> Value {
        match self {
            LogLimitWording::QueryReturnedMore => json!({
                "code": -32005,
                "message": format!("query returned more than {max} results"),
            }),
            LogLimitWording::ResponseSizeExceeded => json!({
                "code": -32602,
                "message": format!(
                    "Log response size exceeded. You can make eth_getLogs requests with up to a \
                     2K block range and no limit on the response size, or you can request any \
                     block range with a cap of {max} logs in the response."
                ),
            }),
        }
    }
}

struct Rule {
    matcher: Match,
    /// `u32::MAX`: never used up.
    remaining: u32,
    fault: Fault,
}

#[derive(Default)]
struct Inner {
    rules: Vec<Rule>,
    down: Option<Fault>,
    log_limit: Option<(usize, LogLimitWording)>,
    http_requests: u64,
    forwarded: u64,
    methods: BTreeMap<String, u64>,
    faults: BTreeMap<String, u64>,
    requests: Vec<Value>,
    hold: Option<HoldRule>,
    /// Requests held so far.
    held: u64,
}

/// Requests with a call matching `matcher` are held, after `pass` of them.
struct HoldRule {
    matcher: Match,
    pass: u64,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    /// `true` while nothing is held back.
    open: Arc<tokio::sync::watch::Sender<bool>>,
    upstream: Arc<String>,
    client: reqwest::Client,
}

/// The proxy; stops accepting connections when dropped.
pub struct RpcProxy {
    pub addr: SocketAddr,
    shared: Shared,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for RpcProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl RpcProxy {
    /// Starts on an ephemeral port, forwarding to `upstream` (an `http://` URL).
    pub async fn start(upstream: &str) -> anyhow::Result<RpcProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Shared {
            inner: Arc::new(Mutex::new(Inner::default())),
            open: Arc::new(tokio::sync::watch::Sender::new(true)),
            upstream: Arc::new(upstream.to_string()),
            client: reqwest::Client::builder().build()?,
        };
        let accept_shared = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = accept_shared.clone();
                tokio::spawn(async move {
                    let _ = serve_connection(stream, shared).await;
                });
            }
        });
        Ok(RpcProxy {
            addr,
            shared,
            accept,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.shared.inner.lock().expect("proxy state"))
    }

    /// The next `k` HTTP requests get `fault`.
    pub fn fail_next(&self, k: u32, fault: Fault) {
        self.fail_next_matching(k, Match::any(), fault);
    }

    /// The next `k` HTTP requests that contain a call matching `matcher` get
    /// `fault`. Rules are used in the order they were added.
    pub fn fail_next_matching(&self, k: u32, matcher: Match, fault: Fault) {
        self.with(|s| {
            s.rules.push(Rule {
                matcher,
                remaining: k,
                fault,
            })
        });
    }

    /// Every request matching `matcher` gets `fault`, until [`clear_faults`](Self::clear_faults).
    pub fn fail_always(&self, matcher: Match, fault: Fault) {
        self.fail_next_matching(u32::MAX, matcher, fault);
    }

    /// Every request fails with `fault` until [`come_back`](Self::come_back).
    pub fn stay_down(&self, fault: Fault) {
        self.with(|s| s.down = Some(fault));
    }

    pub fn come_back(&self) {
        self.with(|s| s.down = None);
    }

    /// `eth_getLogs` answers with more than `max` logs become the provider's error.
    pub fn limit_logs(&self, max: usize, wording: LogLimitWording) {
        self.with(|s| s.log_limit = Some((max, wording)));
    }

    /// Lets the next `pass` HTTP requests with a call matching `matcher`
    /// through, then holds every later one until [`release`](Self::release).
    pub fn hold_after(&self, pass: u64, matcher: Match) {
        self.shared.open.send_replace(false);
        self.with(|s| s.hold = Some(HoldRule { matcher, pass }));
    }

    /// Waits until a request is being held, at most `deadline`.
    pub async fn wait_held(&self, deadline: Duration) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        while self.with(|s| s.held) == 0 {
            anyhow::ensure!(
                started.elapsed() < deadline,
                "no request was held within {deadline:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Forwards the held requests and holds no more.
    pub fn release(&self) {
        self.with(|s| s.hold = None);
        self.shared.open.send_replace(true);
    }

    /// Removes every queued fault, "stay down" and the log limit.
    pub fn clear_faults(&self) {
        self.with(|s| {
            s.rules.clear();
            s.down = None;
            s.log_limit = None;
        });
    }

    /// Queued fault hits not yet used (rules that never run out not counted).
    pub fn pending_faults(&self) -> u64 {
        self.with(|s| {
            s.rules
                .iter()
                .filter(|r| r.remaining != u32::MAX)
                .map(|r| u64::from(r.remaining))
                .sum()
        })
    }

    /// HTTP requests received (a batch is one).
    pub fn http_requests(&self) -> u64 {
        self.with(|s| s.http_requests)
    }

    /// HTTP requests passed on to the node.
    pub fn forwarded(&self) -> u64 {
        self.with(|s| s.forwarded)
    }

    /// Calls of `method` received, faulted or not (each batch element counts).
    pub fn method_count(&self, method: &str) -> u64 {
        self.with(|s| s.methods.get(method).copied().unwrap_or(0))
    }

    pub fn method_counts(&self) -> BTreeMap<String, u64> {
        self.with(|s| s.methods.clone())
    }

    /// Hits of one fault kind (see [`Fault::kind`]); `log_limit` counts
    /// replaced `eth_getLogs` answers.
    pub fn fault_count(&self, kind: &str) -> u64 {
        self.with(|s| s.faults.get(kind).copied().unwrap_or(0))
    }

    pub fn fault_counts(&self) -> BTreeMap<String, u64> {
        self.with(|s| s.faults.clone())
    }

    /// Every request body received, parsed (`null` when not JSON).
    pub fn requests(&self) -> Vec<Value> {
        self.with(|s| s.requests.clone())
    }

    /// The `params` of every call of `method` received, single or batched,
    /// in arrival order (e.g. the filters of each `eth_getLogs`).
    pub fn params_of(&self, method: &str) -> Vec<Value> {
        self.requests()
            .iter()
            .flat_map(|body| match body {
                Value::Array(calls) => calls.clone(),
                single => vec![single.clone()],
            })
            .filter(|call| call.get("method").and_then(Value::as_str) == Some(method))
            .map(|call| call.get("params").cloned().unwrap_or(Value::Null))
            .collect()
    }

    /// Zeroes the counters and forgets the requests; faults stay.
    pub fn reset_counts(&self) {
        self.with(|s| {
            s.http_requests = 0;
            s.forwarded = 0;
            s.methods.clear();
            s.faults.clear();
            s.requests.clear();
        });
    }
}

// ---------------------------------------------------------------------------
// HTTP/1.1 on a socket

struct Request {
    body: Vec<u8>,
    close: bool,
}

enum Outcome {
    Respond {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    },
    Truncate {
        status: u16,
        body: Vec<u8>,
    },
    Drop,
}

async fn serve_connection(stream: TcpStream, shared: Shared) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    while let Some(request) = read_request(&mut reader).await? {
        match shared.process(&request.body).await {
            Outcome::Drop => return Ok(()),
            Outcome::Respond {
                status,
                headers,
                body,
            } => {
                let head = response_head(status, body.len(), &headers, request.close);
                write.write_all(head.as_bytes()).await?;
                write.write_all(&body).await?;
                write.flush().await?;
                if request.close {
                    return Ok(());
                }
            }
            Outcome::Truncate { status, body } => {
                let head = response_head(status, body.len(), &[], false);
                write.write_all(head.as_bytes()).await?;
                write.write_all(&body[..body.len() / 2]).await?;
                write.flush().await?;
                return Ok(());
            }
        }
    }
    Ok(())
}

fn response_head(
    status: u16,
    length: usize,
    headers: &[(&'static str, String)],
    close: bool,
) -> String {
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown");
    let mut head = format!("HTTP/1.1 {status} {reason}\r\ncontent-length: {length}\r\n");
    if !headers.iter().any(|(name, _)| *name == "content-type") {
        head.push_str("content-type: application/json\r\n");
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if close {
        head.push_str("connection: close\r\n");
    }
    head.push_str("\r\n");
    head
}

/// The next request on the connection; `None` when the client closed it.
async fn read_request<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    // The request line (skipping stray empty lines between requests).
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let http10 = line.trim_end().ends_with("HTTP/1.0");
    let mut content_length = 0usize;
    let mut chunked = false;
    let mut close = http10;
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        let value = value.trim().to_ascii_lowercase();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => content_length = value.parse().unwrap_or(0),
            "transfer-encoding" => chunked = value.contains("chunked"),
            "connection" => {
                close = value.contains("close") || (http10 && !value.contains("keep-alive"))
            }
            _ => {}
        }
    }
    let body = if chunked {
        read_chunked(reader).await?
    } else {
        if content_length > MAX_BODY {
            return Err(std::io::Error::other("request body too large"));
        }
        let mut body = vec![0u8; content_length];
        reader.read_exact(&mut body).await?;
        body
    };
    Ok(Some(Request { body, close }))
}

async fn read_chunked<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line).await?;
        let size_text = line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| std::io::Error::other(format!("bad chunk size {size_text:?}")))?;
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                line.clear();
                if reader.read_line(&mut line).await? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(std::io::Error::other("request body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).await?;
        line.clear();
        reader.read_line(&mut line).await?;
    }
}

// ---------------------------------------------------------------------------
// Faults and forwarding

fn rpc_error(id: &Value, error: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": error })
}

impl Shared {
    fn count_fault(&self, kind: &str, hits: u64) {
        let mut inner = self.inner.lock().expect("proxy state");
        *inner.faults.entry(kind.to_string()).or_default() += hits;
    }

    /// Counts the request and picks the fault for it, if any.
    fn admit(&self, parsed: &Value, calls: &[Value]) -> Option<(Fault, Match)> {
        let mut inner = self.inner.lock().expect("proxy state");
        inner.http_requests += 1;
        inner.requests.push(parsed.clone());
        for call in calls {
            let method = call["method"].as_str().unwrap_or("").to_string();
            *inner.methods.entry(method).or_default() += 1;
        }
        let chosen = if let Some(fault) = inner.down.clone() {
            Some((fault, Match::any()))
        } else {
            let rule = inner
                .rules
                .iter_mut()
                .find(|r| r.remaining > 0 && calls.iter().any(|c| r.matcher.matches(c)));
            rule.map(|r| {
                if r.remaining != u32::MAX {
                    r.remaining -= 1;
                }
                (r.fault.clone(), r.matcher.clone())
            })
        };
        if let Some((fault, _)) = &chosen {
            *inner.faults.entry(fault.kind()).or_default() += 1;
        }
        chosen
    }

    /// Whether this request must wait for [`RpcProxy::release`].
    fn holds(&self, calls: &[Value]) -> bool {
        let mut inner = self.inner.lock().expect("proxy state");
        let Some(rule) = inner.hold.as_mut() else {
            return false;
        };
        if !calls.iter().any(|c| rule.matcher.matches(c)) {
            return false;
        }
        if rule.pass > 0 {
            rule.pass -= 1;
            return false;
        }
        inner.held += 1;
        true
    }

    async fn process(&self, body: &[u8]) -> Outcome {
        let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let batch = parsed.is_array();
        let calls: Vec<Value> = match &parsed {
            Value::Array(items) => items.clone(),
            Value::Null => Vec::new(),
            single => vec![single.clone()],
        };
        if self.holds(&calls) {
            let mut open = self.open.subscribe();
            let _ = open.wait_for(|open| *open).await;
        }
        let Some((fault, matcher)) = self.admit(&parsed, &calls) else {
            return self.forward_checked(body.to_vec(), &calls).await;
        };
        match fault {
            Fault::Status(status) => status_response(status),
            Fault::Drop => Outcome::Drop,
            Fault::Delay(duration) => {
                tokio::time::sleep(duration).await;
                self.forward_checked(body.to_vec(), &calls).await
            }
            Fault::Truncate => match self.forward_checked(body.to_vec(), &calls).await {
                Outcome::Respond { status, body, .. } => Outcome::Truncate { status, body },
                other => other,
            },
            Fault::RpcError { code, message } => {
                let error = json!({ "code": code, "message": message });
                let (hit, pass): (Vec<&Value>, Vec<&Value>) =
                    calls.iter().partition(|c| matcher.matches(c));
                if !batch || pass.is_empty() {
                    let answers: Vec<Value> = hit
                        .iter()
                        .map(|c| rpc_error(&c["id"], error.clone()))
                        .collect();
                    let answer = if batch {
                        Value::Array(answers)
                    } else {
                        answers
                            .into_iter()
                            .next()
                            .unwrap_or_else(|| rpc_error(&Value::Null, error.clone()))
                    };
                    return json_response(200, &answer);
                }
                // A batch with some calls hit: forward the others, then merge
                // the answers back in the original order.
                let rest: Vec<Value> = pass.into_iter().cloned().collect();
                let forwarded = self
                    .forward_checked(serde_json::to_vec(&rest).unwrap_or_default(), &rest)
                    .await;
                let Outcome::Respond {
                    status: 200, body, ..
                } = forwarded
                else {
                    return forwarded;
                };
                let Ok(Value::Array(answers)) = serde_json::from_slice::<Value>(&body) else {
                    return json_response(200, &Value::Null);
                };
                let by_id: HashMap<String, Value> = answers
                    .into_iter()
                    .map(|a| (a["id"].to_string(), a))
                    .collect();
                let merged: Vec<Value> = calls
                    .iter()
                    .map(|c| {
                        if matcher.matches(c) {
                            rpc_error(&c["id"], error.clone())
                        } else {
                            by_id.get(&c["id"].to_string()).cloned().unwrap_or_else(|| {
                                rpc_error(
                                    &c["id"],
                                    json!({ "code": -32603, "message": "no answer from the node" }),
                                )
                            })
                        }
                    })
                    .collect();
                json_response(200, &Value::Array(merged))
            }
        }
    }

    /// Forwards to the node and applies the `eth_getLogs` limit to the answer.
    async fn forward_checked(&self, body: Vec<u8>, calls: &[Value]) -> Outcome {
        let (status, answer) = match self.forward(body).await {
            Ok(pair) => pair,
            Err(e) => {
                return Outcome::Respond {
                    status: 502,
                    headers: vec![("content-type", "text/plain".to_string())],
                    body: format!("proxy: upstream failed: {e:#}").into_bytes(),
                }
            }
        };
        let limit = self.inner.lock().expect("proxy state").log_limit;
        if let Some((max, wording)) = limit {
            if status == 200 && calls.iter().any(|c| c["method"] == "eth_getLogs") {
                if let Some((replaced, hits)) = limit_logs(&answer, calls, max, wording) {
                    self.count_fault("log_limit", hits);
                    return Outcome::Respond {
                        status,
                        headers: Vec::new(),
                        body: serde_json::to_vec(&replaced).unwrap_or_default(),
                    };
                }
            }
        }
        Outcome::Respond {
            status,
            headers: Vec::new(),
            body: answer,
        }
    }

    async fn forward(&self, body: Vec<u8>) -> anyhow::Result<(u16, Vec<u8>)> {
        {
            self.inner.lock().expect("proxy state").forwarded += 1;
        }
        let response = self
            .client
            .post(self.upstream.as_str())
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .with_context(|| format!("POST {}", self.upstream))?;
        let status = response.status().as_u16();
        Ok((status, response.bytes().await?.to_vec()))
    }
}

/// The answer with every too-large `eth_getLogs` result replaced by the
/// error, and how many were; `None` when nothing changed.
fn limit_logs(
    answer: &[u8],
    calls: &[Value],
    max: usize,
    wording: LogLimitWording,
) -> Option<(Value, u64)> {
    let mut parsed: Value = serde_json::from_slice(answer).ok()?;
    let methods: HashMap<String, &str> = calls
        .iter()
        .map(|c| (c["id"].to_string(), c["method"].as_str().unwrap_or("")))
        .collect();
    let mut hits = 0;
    let mut check = |response: &mut Value, method: Option<&str>| {
        let too_many = response["result"]
            .as_array()
            .is_some_and(|logs| logs.len() > max);
        if method == Some("eth_getLogs") && too_many {
            *response = rpc_error(&response["id"], wording.error(max));
            hits += 1;
        }
    };
    match &mut parsed {
        Value::Array(responses) => {
            for response in responses.iter_mut() {
                let method = methods.get(&response["id"].to_string()).copied();
                check(response, method);
            }
        }
        single => {
            let method = calls.first().and_then(|c| c["method"].as_str());
            check(single, method);
        }
    }
    (hits > 0).then_some((parsed, hits))
}

fn json_response(status: u16, body: &Value) -> Outcome {
    Outcome::Respond {
        status,
        headers: Vec::new(),
        body: serde_json::to_vec(body).unwrap_or_default(),
    }
}

fn status_response(status: u16) -> Outcome {
    if status == 429 {
        return Outcome::Respond {
            status,
            headers: vec![("retry-after", "1".to_string())],
            body: serde_json::to_vec(&json!({
                "jsonrpc": "2.0",
                "id": null,
                "error": { "code": 429, "message": "Too Many Requests" }
            }))
            .unwrap_or_default(),
        };
    }
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("error");
    Outcome::Respond {
        status,
        headers: vec![("content-type", "text/plain".to_string())],
        body: format!("injected fault: {status} {reason}").into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_look_at_method_and_params() {
        let call = json!({ "method": "eth_call", "params": [{ "to": "0xAB", "data": "0x18160DDD" }, "latest"] });
        assert!(Match::any().matches(&call));
        assert!(Match::method("eth_call").matches(&call));
        assert!(!Match::method("eth_getLogs").matches(&call));
        assert!(Match::method("eth_call")
            .params_containing("0x18160ddd")
            .matches(&call));
        assert!(!Match::method("eth_call")
            .params_containing("0x95d89b41")
            .matches(&call));
    }

    #[test]
    fn log_limit_replaces_only_large_get_logs_answers() {
        let calls = vec![
            json!({ "id": 1, "method": "eth_getLogs", "params": [] }),
            json!({ "id": 2, "method": "eth_getLogs", "params": [] }),
            json!({ "id": 3, "method": "eth_blockNumber", "params": [] }),
        ];
        let answer = serde_json::to_vec(&json!([
            { "id": 1, "result": [1, 2, 3] },
            { "id": 2, "result": [1] },
            { "id": 3, "result": "0x10" },
        ]))
        .unwrap();
        let (replaced, hits) =
            limit_logs(&answer, &calls, 2, LogLimitWording::QueryReturnedMore).unwrap();
        assert_eq!(hits, 1);
        assert_eq!(replaced[0]["error"]["code"], -32005);
        assert_eq!(
            replaced[0]["error"]["message"],
            "query returned more than 2 results"
        );
        assert_eq!(replaced[1]["result"], json!([1]));
        assert!(limit_logs(&answer, &calls, 3, LogLimitWording::QueryReturnedMore).is_none());
    }
}
