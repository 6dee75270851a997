//! A real Ethereum node for tests: anvil from the npm package
//! `@foundry-rs/anvil`, installed with the test contracts by
//! `scripts/ensure-node-tools.sh` (`make tools`) into `$ETHPIPE_TOOLS_DIR`
//! (default `~/.cache/ethpipe-tools`).
//!
//! Each [`Anvil`] is its own process on a free port (`--port 0`; the port is
//! read from anvil's "Listening on" line), ready once `eth_chainId` answers,
//! and killed when the value is dropped.
//!
//! ```no_run
//! # async fn f() -> anyhow::Result<()> {
//! use ethpipe_testkit::{Anvil, Arg};
//! let anvil = Anvil::start().await?;
//! let chain = anvil.chain().await?;
//! let args = [Arg::string("Alpha"), Arg::string("ABC"), Arg::uint(18), Arg::uint(1_000)];
//! let token = chain.deploy("StandardToken", &args).await?;
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;

use crate::chain::Chain;

/// How long anvil may take to listen and answer `eth_chainId`.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of anvil's output kept for error messages.
const KEPT_OUTPUT_LINES: usize = 200;

/// Where `make tools` installs anvil, solc and the compiled contracts.
pub fn tools_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ETHPIPE_TOOLS_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache").join("ethpipe-tools")
}

/// The compiled test contracts: `<Name>.json` per contract.
pub fn contracts_dir() -> PathBuf {
    tools_dir().join("contracts")
}

/// The anvil binary installed by `make tools`.
pub fn anvil_binary() -> anyhow::Result<PathBuf> {
    let path = tools_dir().join("bin").join("anvil");
    if !path.is_file() {
        bail!(
            "anvil is not installed at {}: run `make tools` (scripts/ensure-node-tools.sh)",
            path.display()
        );
    }
    Ok(path)
}

/// Settings for one anvil process; `Default` is anvil's defaults (latest
/// hardfork, chain id 31337, automine, genesis at the current time).
#[derive(Debug, Clone, Default)]
pub struct AnvilOptions {
    /// Timestamp (Unix seconds) of the genesis block (`--timestamp`).
    pub genesis_timestamp: Option<u64>,
    /// EVM hardfork (`--hardfork`), e.g. `shanghai` to get pre-Cancun
    /// SELFDESTRUCT that deletes code outside the creating transaction.
    pub hardfork: Option<String>,
    /// Chain id (`--chain-id`).
    pub chain_id: Option<u64>,
    /// Start with automine off (`--no-mining`): blocks are mined on demand.
    pub no_mining: bool,
    /// More command-line arguments, passed as they are.
    pub args: Vec<String>,
}

/// A running anvil; dropped, the process is killed.
pub struct Anvil {
    child: Child,
    url: String,
    port: u16,
    output: Arc<Mutex<VecDeque<String>>>,
}

impl Anvil {
    /// Starts anvil with its defaults.
    pub async fn start() -> anyhow::Result<Anvil> {
        Anvil::start_with(AnvilOptions::default()).await
    }

    /// Starts anvil whose genesis block has this timestamp, so that the
    /// blocks a test mines can be put on chosen days.
    pub async fn start_at(genesis_timestamp: u64) -> anyhow::Result<Anvil> {
        Anvil::start_with(AnvilOptions {
            genesis_timestamp: Some(genesis_timestamp),
            ..AnvilOptions::default()
        })
        .await
    }

    pub async fn start_with(options: AnvilOptions) -> anyhow::Result<Anvil> {
        let binary = anvil_binary()?;
        let mut command = Command::new(&binary);
        command.args(["--host", "127.0.0.1", "--port", "0", "--color", "never"]);
        if let Some(ts) = options.genesis_timestamp {
            command.args(["--timestamp", &ts.to_string()]);
        }
        if let Some(hardfork) = &options.hardfork {
            command.args(["--hardfork", hardfork]);
        }
        if let Some(chain_id) = options.chain_id {
            command.args(["--chain-id", &chain_id.to_string()]);
        }
        if options.no_mining {
            command.arg("--no-mining");
        }
        command.args(&options.args);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;

        // anvil logs every request on stdout: keep reading it (or the pipe
        // fills up and anvil blocks), keep the tail for error messages, and
        // hand over the port from the "Listening on 127.0.0.1:PORT" line.
        let output = Arc::new(Mutex::new(VecDeque::new()));
        let (port_tx, port_rx) = mpsc::channel::<u16>();
        if let Some(stdout) = child.stdout.take() {
            let output = Arc::clone(&output);
            std::thread::spawn(move || drain(stdout, output, Some(port_tx)));
        }
        if let Some(stderr) = child.stderr.take() {
            let output = Arc::clone(&output);
            std::thread::spawn(move || drain(stderr, output, None));
        }

        let mut anvil = Anvil {
            child,
            url: String::new(),
            port: 0,
            output,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        let port = loop {
            if let Ok(port) = port_rx.try_recv() {
                break port;
            }
            anvil.fail_if_exited()?;
            if Instant::now() > deadline {
                bail!(
                    "anvil did not report its port within {START_TIMEOUT:?}; output:\n{}",
                    anvil.output().join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        anvil.port = port;
        anvil.url = format!("http://127.0.0.1:{port}");
        anvil.wait_ready(deadline).await?;
        Ok(anvil)
    }

    /// The JSON-RPC endpoint, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A client for this node, with its dev accounts.
    pub async fn chain(&self) -> anyhow::Result<Chain> {
        Chain::connect(&self.url).await
    }

    /// The last lines anvil printed (stdout and stderr).
    pub fn output(&self) -> Vec<String> {
        self.output
            .lock()
            .map(|o| o.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn fail_if_exited(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            // Give the reader threads a moment to collect the last lines.
            std::thread::sleep(Duration::from_millis(50));
            bail!(
                "anvil exited ({status}) before it was ready; output:\n{}",
                self.output().join("\n")
            );
        }
        Ok(())
    }

    /// Polls `eth_chainId` until anvil answers it.
    async fn wait_ready(&mut self, deadline: Instant) -> anyhow::Result<()> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let request = json!({ "jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": [] });
        loop {
            let answer = client.post(&self.url).json(&request).send().await;
            if let Ok(response) = answer {
                if let Ok(body) = response.json::<serde_json::Value>().await {
                    if body.get("result").is_some() {
                        return Ok(());
                    }
                }
            }
            self.fail_if_exited()?;
            if Instant::now() > deadline {
                bail!(
                    "anvil at {} did not answer eth_chainId within {START_TIMEOUT:?}; output:\n{}",
                    self.url,
                    self.output().join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn drain(
    stream: impl std::io::Read,
    output: Arc<Mutex<VecDeque<String>>>,
    mut port_tx: Option<mpsc::Sender<u16>>,
) {
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { break };
        if let Some(tx) = &port_tx {
            if let Some(port) = listening_port(&line) {
                let _ = tx.send(port);
                port_tx = None;
            }
        }
        if let Ok(mut kept) = output.lock() {
            if kept.len() == KEPT_OUTPUT_LINES {
                kept.pop_front();
            }
            kept.push_back(line);
        }
    }
}

/// The port of a line `Listening on 127.0.0.1:PORT`.
fn listening_port(line: &str) -> Option<u16> {
    let rest = line.trim().strip_prefix("Listening on ")?;
    rest.rsplit_once(':')?.1.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_port_from_the_listening_line() {
        assert_eq!(listening_port("Listening on 127.0.0.1:36723"), Some(36723));
        assert_eq!(listening_port("  Listening on [::1]:8545  "), Some(8545));
        assert_eq!(listening_port("eth_chainId"), None);
    }
}
