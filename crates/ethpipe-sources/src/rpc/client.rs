//! A JSON-RPC 2.0 client for Ethereum nodes: batches, bounded concurrency, an
//! optional request rate, and retries of transient faults.
//!
//! Faults are sorted once, here, so the layers above only see three kinds:
//! transient (timeouts, dropped connections, HTTP 429/5xx, cut-off bodies,
//! JSON-RPC rate-limit errors — retried, never turned into a value), "too many
//! results" (the caller splits its request), and a node error object (an
//! answer: for `eth_call` it means the call failed).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ethpipe_core::SourceError;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{Mutex, Semaphore};

use crate::retry::RetryPolicy;

/// How the client talks to the node; every knob has a CLI flag.
#[derive(Debug, Clone)]
pub struct RpcClientConfig {
    /// Requests in flight at once (`--rpc-concurrency`).
    pub concurrency: usize,
    /// Requests per second, if the node's plan limits it (`--rpc-rps`).
    pub requests_per_second: Option<f64>,
    /// Calls per JSON-RPC batch (`--rpc-batch-size`); many nodes cap it at 100.
    pub batch_size: usize,
    /// Per-request timeout.
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl Default for RpcClientConfig {
    fn default() -> Self {
        RpcClientConfig {
            concurrency: 8,
            requests_per_second: None,
            batch_size: 100,
            timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
        }
    }
}

/// A JSON-RPC error object the node answered with.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeError {
    pub code: i64,
    pub message: String,
}

impl std::fmt::Display for NodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

/// What a node's error object means to the caller, decided in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeErrorKind {
    /// A rate limit or quota ("ask again later"): retried with backoff,
    /// never mistaken for an answer or for a range that is too large.
    RateLimited,
    /// `eth_getLogs` over more than the node answers at once: split the range.
    TooManyResults,
    /// The node does not offer the method, or not in the form it was asked
    /// (its structured code says so): try another way for the rest of the run.
    MethodUnsupported,
    /// Anything else: for `eth_call` the call's answer, elsewhere a fault.
    Other,
}

/// geth's code for a reverted `eth_call`.
const EXECUTION_REVERTED: i64 = 3;
/// JSON-RPC 2.0 "method not found".
const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC 2.0 "invalid params": the method exists but not in this form.
const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC 2.0 "invalid request"; some providers answer unknown methods so.
const INVALID_REQUEST: i64 = -32600;
/// EIP-1474 "method not supported".
const METHOD_NOT_SUPPORTED: i64 = -32004;
/// EIP-1474 "limit exceeded": a quota, or (with words saying so) a result limit.
const LIMIT_EXCEEDED: i64 = -32005;

impl NodeError {
    /// Sorts by the structured code first; words only refine a code that
    /// providers use for several things (-32005, -32602, -32600). Rate-limit
    /// words are checked before result-limit words, since "limit exceeded"
    /// alone is a quota, not a range that is too large.
    pub fn kind(&self) -> NodeErrorKind {
        let message = self.message.to_ascii_lowercase();
        let says = |words: &[&str]| words.iter().any(|w| message.contains(w));
        // A revert is the call's answer, whatever words its reason uses.
        if self.code == EXECUTION_REVERTED || message.contains("execution reverted") {
            return NodeErrorKind::Other;
        }
        if self.code == 429 || says(RATE_LIMIT_WORDS) {
            NodeErrorKind::RateLimited
        } else if says(TOO_MANY_RESULTS_WORDS) {
            NodeErrorKind::TooManyResults
        } else if self.code == LIMIT_EXCEEDED {
            NodeErrorKind::RateLimited
        } else if matches!(
            self.code,
            METHOD_NOT_FOUND | METHOD_NOT_SUPPORTED | INVALID_PARAMS
        ) || (self.code == INVALID_REQUEST && says(UNSUPPORTED_METHOD_WORDS))
        {
            NodeErrorKind::MethodUnsupported
        } else {
            NodeErrorKind::Other
        }
    }

    /// Providers word rate limits many ways; all of them mean "ask again later".
    fn is_rate_limit(&self) -> bool {
        self.kind() == NodeErrorKind::RateLimited
    }

    /// `eth_getLogs` over a range the node refuses to answer in one go.
    pub fn is_too_many_results(&self) -> bool {
        self.kind() == NodeErrorKind::TooManyResults
    }

    /// The method does not exist on this node (e.g. `trace_block` on a node
    /// without the trace API), by the node's error code; a transient error
    /// ("header not available", a timeout, a quota) never counts.
    pub fn is_unsupported_method(&self) -> bool {
        self.kind() == NodeErrorKind::MethodUnsupported
    }
}

/// How providers say "slow down" or "out of quota" (Infura, Alchemy,
/// QuickNode, Ankr, public nodes).
const RATE_LIMIT_WORDS: &[&str] = &[
    "rate limit",
    "too many requests",
    "compute units",
    "capacity",
    "request limit",
    "requests limit",
    "daily request count",
    "quota",
    "credits",
    "throttl",
];

/// How providers say "this range has more logs than one answer may hold".
const TOO_MANY_RESULTS_WORDS: &[&str] = &[
    "more than",
    "too many results",
    "too many logs",
    "response size",
    "size exceeded",
    "block range",
    "range is too large",
    "range too large",
    "exceeds max results",
];

const UNSUPPORTED_METHOD_WORDS: &[&str] = &[
    "unsupported method",
    "method not supported",
    "not supported",
    "method not found",
    "does not exist",
    "not available",
];

/// One call's answer: the `result`, or the node's error object.
pub type CallResult = Result<Value, NodeError>;

/// A call's answer as the bytes the node sent, for answers too large to
/// hold twice (once as bytes, once as a `serde_json::Value`): the caller
/// reads them in place with [`parse_answer`].
#[derive(Debug)]
pub enum RawAnswer {
    Body(Vec<u8>),
    /// The answer is longer than the caller would hold; `read` is how long
    /// it was known to be (its `Content-Length`, or what had arrived).
    TooLarge {
        read: usize,
    },
}

/// Answers shorter than this are checked for a rate-limit error before
/// [`RpcClient::call_raw`] returns them; an error object is never near this
/// long, and a long answer is a result, so it is not scanned twice.
const ERROR_SIZED: usize = 64 * 1024;

/// One element of a JSON-RPC answer with its `result` read as `T`.
#[derive(Deserialize)]
struct AnswerItem<T> {
    result: Option<T>,
    #[serde(default)]
    error: Option<ErrorObject>,
}

#[derive(Deserialize)]
struct ErrorObject {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
}

/// Reads the answer to one call (a one-element batch, or a single object as
/// nodes send for a whole-batch error) straight from its bytes: the
/// `result` as `T`, which may borrow from `bytes`, or the node's error
/// object. `Err` is an answer that is not JSON-RPC (cut off, garbled).
pub fn parse_answer<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
) -> Result<Result<T, NodeError>, String> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    let item: AnswerItem<T> = match first {
        Some(b'[') => {
            let mut items: Vec<AnswerItem<T>> =
                serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
            match (items.pop(), items.is_empty()) {
                (Some(item), true) => item,
                _ => return Err("expected one answer in the batch".into()),
            }
        }
        Some(b'{') => serde_json::from_slice(bytes).map_err(|e| e.to_string())?,
        _ => return Err("expected a JSON array or object".into()),
    };
    match (item.result, item.error) {
        (_, Some(error)) => Ok(Err(NodeError {
            code: error.code,
            message: error.message,
        })),
        (Some(result), None) => Ok(Ok(result)),
        (None, None) => Err("an answer with neither a result nor an error".into()),
    }
}

#[derive(Clone)]
pub struct RpcClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    url: String,
    /// The URL as it may be shown: no credentials, no path (API keys live there).
    shown_url: String,
    in_flight: Semaphore,
    pacing: Option<Mutex<Pacing>>,
    batch_size: usize,
    retry: RetryPolicy,
}

/// Spaces requests evenly to honour `--rpc-rps`.
struct Pacing {
    interval: Duration,
    next_slot: Instant,
}

impl RpcClient {
    pub fn new(url: &str, config: RpcClientConfig) -> Result<RpcClient, SourceError> {
        let shown_url = shown_url(url)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(config.timeout)
            .build()
            .map_err(|e| SourceError::Config(format!("cannot build the HTTP client: {e}")))?;
        let pacing = config
            .requests_per_second
            .filter(|rps| *rps > 0.0)
            .map(|rps| {
                Mutex::new(Pacing {
                    interval: Duration::from_secs_f64(1.0 / rps),
                    next_slot: Instant::now(),
                })
            });
        Ok(RpcClient {
            inner: Arc::new(Inner {
                http,
                url: url.to_string(),
                shown_url,
                in_flight: Semaphore::new(config.concurrency.max(1)),
                pacing,
                batch_size: config.batch_size.max(1),
                retry: config.retry,
            }),
        })
    }

    /// The endpoint as it may appear in messages.
    pub fn shown_url(&self) -> &str {
        &self.inner.shown_url
    }

    pub fn batch_size(&self) -> usize {
        self.inner.batch_size
    }

    /// One call; a node error object is returned as `Ok(Err(..))` so callers
    /// decide what it means, transient faults are retried.
    pub async fn call(&self, method: &str, params: Value) -> Result<CallResult, SourceError> {
        let mut results = self.batch(&[(method, params)]).await?;
        results.pop().ok_or_else(|| {
            SourceError::Transient(format!("{}: empty answer to {method}", self.shown_url()))
        })
    }

    /// Like [`call`](Self::call), with a node error turned into a failure.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, SourceError> {
        self.call(method, params).await?.map_err(|error| {
            SourceError::Transient(format!(
                "{} answered {method} with {error}",
                self.shown_url()
            ))
        })
    }

    /// Many calls, sent as JSON-RPC batches of at most `batch_size`, run
    /// concurrently within the client's limits. Answers come back in the order
    /// of `calls`. A rate-limited element is re-sent (with the rest of its
    /// batch), never returned as an error.
    pub async fn batch(&self, calls: &[(&str, Value)]) -> Result<Vec<CallResult>, SourceError> {
        self.batch_retrying(calls, |_| false).await
    }

    /// Like [`batch`](Self::batch), and node errors `is_transient` accepts
    /// are re-sent as rate limits are (for methods where an error object is
    /// never an answer, such as a block's traces). When the retries run out
    /// the call fails as transient; only the other node errors are returned.
    pub async fn batch_retrying(
        &self,
        calls: &[(&str, Value)],
        is_transient: fn(&NodeError) -> bool,
    ) -> Result<Vec<CallResult>, SourceError> {
        let chunks = calls.chunks(self.inner.batch_size).map(|chunk| async move {
            self.inner
                .retry
                .run(|| self.send_batch(chunk, is_transient))
                .await
        });
        let answers = futures_util::future::try_join_all(chunks).await?;
        Ok(answers.into_iter().flatten().collect())
    }

    async fn send_batch(
        &self,
        calls: &[(&str, Value)],
        is_transient: fn(&NodeError) -> bool,
    ) -> Result<Vec<CallResult>, SourceError> {
        let body: Vec<Value> = calls
            .iter()
            .enumerate()
            .map(|(id, (method, params))| {
                json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
            })
            .collect();
        let method = calls.first().map(|(m, _)| *m).unwrap_or("batch");
        let answer = self.post(method, &Value::Array(body)).await?;
        let results = self.match_answers(method, calls.len(), answer)?;
        for error in results.iter().filter_map(|r| r.as_ref().err()) {
            if error.is_rate_limit() {
                return Err(SourceError::Transient(format!(
                    "{} is rate-limiting {method}: {error}",
                    self.shown_url()
                )));
            }
            if is_transient(error) {
                return Err(SourceError::Transient(format!(
                    "{} answered {method} with {error}",
                    self.shown_url()
                )));
            }
        }
        Ok(results)
    }

    /// One call sent as [`call`](Self::call) sends it, its answer handed
    /// back as bytes, at most `max_bytes` of them (a longer answer is left
    /// unread: [`RawAnswer::TooLarge`]). Transient faults and rate-limit
    /// answers are retried; other node errors are in the bytes.
    pub async fn call_raw(
        &self,
        method: &str,
        params: Value,
        max_bytes: usize,
    ) -> Result<RawAnswer, SourceError> {
        let body = json!([{"jsonrpc": "2.0", "id": 0, "method": method, "params": params}]);
        self.inner
            .retry
            .run(|| self.send_raw(method, &body, max_bytes))
            .await
    }

    async fn send_raw(
        &self,
        method: &str,
        body: &Value,
        max_bytes: usize,
    ) -> Result<RawAnswer, SourceError> {
        let _permit = self.permit().await?;
        self.wait_for_slot().await;
        let mut response = self.send(method, body).await?;
        let answer = read_capped(&mut response, max_bytes)
            .await
            .map_err(|e| self.transient(method, describe_http_error(&e)))?;
        if let RawAnswer::Body(bytes) = &answer {
            if bytes.len() < ERROR_SIZED {
                if let Ok(Err(error)) = parse_answer::<IgnoredAny>(bytes) {
                    if error.is_rate_limit() {
                        return Err(self.transient(method, format!("rate-limited: {error}")));
                    }
                }
            }
        }
        Ok(answer)
    }

    /// Puts a batch answer back in request order by `id`.
    fn match_answers(
        &self,
        method: &str,
        expected: usize,
        answer: Value,
    ) -> Result<Vec<CallResult>, SourceError> {
        let bad = |what: &str| {
            SourceError::Transient(format!(
                "{} sent a malformed answer to {method}: {what}",
                self.shown_url()
            ))
        };
        let items = match answer {
            Value::Array(items) => items,
            // Some nodes answer a whole batch with one error object (e.g. a
            // rate limit, or "batch too large").
            Value::Object(_) => match node_error(&answer) {
                Some(error) if error.is_rate_limit() => {
                    return Err(SourceError::Transient(format!(
                        "{} is rate-limiting {method}: {error}",
                        self.shown_url()
                    )))
                }
                Some(error) => {
                    return Err(SourceError::Config(format!(
                        "{} refused a batch of {expected} {method} calls: {error} (lower --rpc-batch-size)",
                        self.shown_url()
                    )))
                }
                None => return Err(bad("expected a JSON array")),
            },
            _ => return Err(bad("expected a JSON array")),
        };
        let mut slots: Vec<Option<CallResult>> = vec![None; expected];
        for item in items {
            let id = item
                .get("id")
                .and_then(Value::as_u64)
                .and_then(|id| usize::try_from(id).ok())
                .filter(|id| *id < expected)
                .ok_or_else(|| bad("an answer with an unknown id"))?;
            slots[id] = Some(match node_error(&item) {
                Some(error) => Err(error),
                None => Ok(item.get("result").cloned().unwrap_or(Value::Null)),
            });
        }
        slots
            .into_iter()
            .map(|slot| slot.ok_or_else(|| bad("an answer is missing from the batch")))
            .collect()
    }

    /// One HTTP round trip within the concurrency and rate limits.
    async fn post(&self, method: &str, body: &Value) -> Result<Value, SourceError> {
        let _permit = self.permit().await?;
        self.wait_for_slot().await;
        let response = self.send(method, body).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transient(method, describe_http_error(&e)))?;
        serde_json::from_slice(&bytes)
            .map_err(|_| self.transient(method, "the answer was cut off or is not JSON".into()))
    }

    async fn permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, SourceError> {
        self.inner
            .in_flight
            .acquire()
            .await
            .map_err(|_| SourceError::Transient("the RPC client was shut down".into()))
    }

    fn transient(&self, method: &str, what: String) -> SourceError {
        SourceError::Transient(format!("{} {method}: {what}", self.shown_url()))
    }

    /// Sends `body` and checks the HTTP status; the answer's body is the
    /// caller's to read.
    async fn send(&self, method: &str, body: &Value) -> Result<reqwest::Response, SourceError> {
        let response = self
            .inner
            .http
            .post(&self.inner.url)
            .json(body)
            .send()
            .await
            .map_err(|e| self.transient(method, describe_http_error(&e)))?;
        let status = response.status();
        if status.as_u16() == 429 || status.is_server_error() {
            if let Some(wait) = retry_after(&response) {
                tokio::time::sleep(wait).await;
            }
            return Err(self.transient(method, format!("HTTP {status}")));
        }
        if !status.is_success() {
            return Err(SourceError::Config(format!(
                "{} answered {method} with HTTP {status} (check --rpc-url and its access key)",
                self.shown_url()
            )));
        }
        Ok(response)
    }

    async fn wait_for_slot(&self) {
        let Some(pacing) = &self.inner.pacing else {
            return;
        };
        let slot = {
            let mut pacing = pacing.lock().await;
            let now = Instant::now();
            let slot = pacing.next_slot.max(now);
            pacing.next_slot = slot + pacing.interval;
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
    }
}

/// A response's body, unless it is longer than `max_bytes`. The buffer
/// grows by doubling but never past `max_bytes`, so it holds at most that.
async fn read_capped(
    response: &mut reqwest::Response,
    max_bytes: usize,
) -> Result<RawAnswer, reqwest::Error> {
    let announced = response.content_length().map(|n| n as usize);
    if let Some(length) = announced.filter(|n| *n > max_bytes) {
        return Ok(RawAnswer::TooLarge { read: length });
    }
    let mut body = Vec::with_capacity(announced.unwrap_or(0));
    while let Some(chunk) = response.chunk().await? {
        let needed = body.len() + chunk.len();
        if needed > max_bytes {
            return Ok(RawAnswer::TooLarge { read: needed });
        }
        if needed > body.capacity() {
            let grown = (body.capacity() * 2).max(needed).min(max_bytes);
            body.reserve_exact(grown - body.len());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(RawAnswer::Body(body))
}

fn node_error(item: &Value) -> Option<NodeError> {
    let error = item.get("error").filter(|e| !e.is_null())?;
    Some(NodeError {
        code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
        message: error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    })
}

/// `Retry-After` in seconds, capped so a hostile value cannot stall a run.
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let seconds: u64 = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds.min(30)))
}

/// reqwest's messages embed the URL, which may carry an API key: say what
/// happened without it.
fn describe_http_error(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "the request timed out".to_string()
    } else if error.is_connect() {
        "could not connect".to_string()
    } else if error.is_body() || error.is_decode() {
        "the answer was cut off".to_string()
    } else {
        "the connection failed".to_string()
    }
}

/// Validates an RPC URL and gives the form safe to print: scheme, host and
/// port only, since providers put API keys in the path or the user info.
fn shown_url(url: &str) -> Result<String, SourceError> {
    let invalid = || {
        SourceError::Config(
            "invalid --rpc-url: expected an http(s) URL such as http://127.0.0.1:8545".to_string(),
        )
    };
    let parsed = reqwest::Url::parse(url).map_err(|_| invalid())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid());
    }
    let host = parsed.host_str().ok_or_else(invalid)?;
    Ok(match parsed.port() {
        Some(port) => format!("{}://{host}:{port}", parsed.scheme()),
        None => format!("{}://{host}", parsed.scheme()),
    })
}

/// `0x`-prefixed hex quantity → u64.
pub fn parse_quantity(value: &Value) -> Option<u64> {
    let text = value.as_str()?.strip_prefix("0x")?;
    u64::from_str_radix(text, 16).ok()
}

/// u64 → `0x`-prefixed hex quantity.
pub fn quantity(n: u64) -> String {
    format!("{n:#x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_url_hides_keys_in_path_and_userinfo() {
        assert_eq!(
            shown_url("https://user:secret@mainnet.example.io/v3/abcdef").unwrap(),
            "https://mainnet.example.io"
        );
        assert_eq!(
            shown_url("http://127.0.0.1:8545").unwrap(),
            "http://127.0.0.1:8545"
        );
        assert!(shown_url("ws://127.0.0.1:8546").is_err());
        assert!(shown_url("not a url").is_err());
    }

    #[test]
    fn sorts_node_errors() {
        let error = |code, message: &str| NodeError {
            code,
            message: message.to_string(),
        };
        assert!(error(-32005, "rate limit exceeded").is_rate_limit());
        assert!(error(429, "slow down").is_rate_limit());
        assert!(!error(3, "execution reverted").is_rate_limit());
        assert!(error(-32005, "query returned more than 10000 results").is_too_many_results());
        assert!(error(-32602, "Log response size exceeded.").is_too_many_results());
        assert!(!error(3, "execution reverted").is_too_many_results());
        assert!(error(-32601, "the method trace_block does not exist").is_unsupported_method());
    }

    #[test]
    fn quotas_are_rate_limits_not_result_limits() {
        let kind = |code, message: &str| {
            NodeError {
                code,
                message: message.to_string(),
            }
            .kind()
        };
        use NodeErrorKind::{MethodUnsupported, Other, RateLimited, TooManyResults};
        for (code, message, expected) in [
            // EIP-1474's -32005 is a quota unless the words are about results.
            (-32005, "limit exceeded", RateLimited),
            (
                -32005,
                "daily request count exceeded, request rate limited",
                RateLimited,
            ),
            (-32007, "request limit reached", RateLimited),
            (-32000, "Monthly capacity limit exceeded", RateLimited),
            (
                -32005,
                "query returned more than 10000 results",
                TooManyResults,
            ),
            (-32602, "Log response size exceeded.", TooManyResults),
            (-32000, "too many requests", RateLimited),
            // Method support is read from the code only.
            (-32601, "Method not found", MethodUnsupported),
            (-32004, "method not supported", MethodUnsupported),
            (
                -32602,
                "invalid argument 1: unknown tracer",
                MethodUnsupported,
            ),
            (-32600, "Unsupported method: trace_block", MethodUnsupported),
            (-32600, "invalid json request", Other),
            (-32000, "the method is temporarily not available", Other),
            (-32000, "header not found", Other),
            (-32603, "internal error", Other),
            // A revert is an answer, whatever its reason says.
            (3, "execution reverted: rate limit of the vault", Other),
            (-32000, "execution reverted: quota used up", Other),
        ] {
            assert_eq!(kind(code, message), expected, "{code} {message}");
        }
    }

    #[test]
    fn quantities_round_trip() {
        assert_eq!(quantity(0), "0x0");
        assert_eq!(quantity(483920), "0x76250");
        assert_eq!(parse_quantity(&json!("0x76250")), Some(483920));
        assert_eq!(parse_quantity(&json!("76250")), None);
    }
}
