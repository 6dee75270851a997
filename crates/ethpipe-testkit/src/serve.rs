//! `ethpipe serve` replicas for tests that stop, kill and restart things:
//! start one on a free port, read its `/readyz` and `/metrics`, stop it with
//! SIGTERM or SIGKILL, and wait on conditions with a deadline.

use std::future::Future;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::Ethpipe;
use tokio::io::AsyncBufReadExt;
use tokio::process::Child;

pub struct Replica {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    log: Arc<Mutex<String>>,
    http: reqwest::Client,
}

impl Replica {
    /// Starts `ethpipe serve --bind 127.0.0.1:0` and waits for its address.
    pub async fn start(ethpipe: Ethpipe) -> Replica {
        let mut child = ethpipe
            .env("ETHPIPE_LOG", "info")
            .command(&["serve", "--bind", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ethpipe serve starts");
        let log = Arc::new(Mutex::new(String::new()));
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = Arc::clone(&log);
        let (address, announced) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut address = Some(address);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split("dashboard and API on ").nth(1) {
                    let base = rest.split_whitespace().next().unwrap_or_default();
                    if let Some(sender) = address.take() {
                        let _ = sender.send(base.trim_end_matches('/').to_string());
                    }
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let base = tokio::time::timeout(Duration::from_secs(30), announced)
            .await
            .expect("ethpipe serve announces its address")
            .expect("ethpipe serve ended without announcing its address");
        Replica {
            child,
            base,
            log,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// `/readyz`: its status and JSON body (status 0 when it did not answer).
    pub async fn readyz(&self) -> (u16, serde_json::Value) {
        match self.http.get(format!("{}/readyz", self.base)).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                (status, serde_json::from_str(&body).unwrap_or_default())
            }
            Err(_) => (0, serde_json::Value::Null),
        }
    }

    pub async fn is_leader(&self) -> bool {
        self.readyz().await.1["leader"] == true
    }

    /// One unlabelled series of `/metrics`.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .and_then(|value| value.trim().parse().ok())
    }

    pub async fn post_json(&self, path: &str, body: &str) -> (u16, serde_json::Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("the server answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or_default())
    }

    /// SIGTERM; the process must exit 0 (a graceful stop). Returns its log.
    pub async fn terminate(mut self) -> String {
        self.signal("-TERM");
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("serve stops after SIGTERM")
            .unwrap();
        let log = self.log();
        assert_eq!(status.code(), Some(0), "serve exits 0 on SIGTERM: {log}");
        log
    }

    /// SIGKILL: no chance to clean up.
    pub async fn kill(mut self) {
        self.signal("-KILL");
        let _ = self.child.wait().await;
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("running").to_string();
        assert!(std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap()
            .success());
    }
}

/// Polls `condition` every 100 ms until it holds; panics after `limit`.
pub async fn wait_for<F, Fut>(what: &str, limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
