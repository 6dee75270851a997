//! `make soak`: two `ethpipe serve` replicas with a trigger every 10 seconds
//! over an anvil chain that keeps mining, while a seeded chaos loop restarts
//! PostgreSQL (a private server), kills and stops replicas (and starts new
//! ones), and stalls and cuts the node (a TCP proxy in front of anvil). The
//! chain's days lie in the past and are mined quickly, a few minutes of
//! chain time per block, so days complete during the soak. At the end every
//! owed day must be loaded once, `ethpipe verify` must be clean, and each
//! day's rows must equal a fresh single-process load into a new database.
//!
//! usage: soak (SOAK_SECONDS, default 600; SOAK_SEED, default random;
//! ETHPIPE_BIN, default $CARGO_TARGET_DIR/debug/ethpipe)

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{NaiveDate, Utc};
use ethpipe_testkit::chain::{day_end, day_start, encode_call};
use ethpipe_testkit::fixtures::Rng;
use ethpipe_testkit::serve::Replica;
use ethpipe_testkit::{Anvil, Arg, Chain, Ethpipe, PrivatePostgres, TcpProxy, Tx};
use tokio_postgres::NoTls;

/// Past days the chain covers (and the trigger owes).
const DAYS: i64 = 4;
/// Chain time between blocks.
const BLOCK_SECONDS: u64 = 3 * 3600;
/// After the soak, how long the replicas get to load what is still due.
const SETTLE: Duration = Duration::from_secs(240);

#[derive(Default)]
struct Counts {
    faults: BTreeMap<&'static str, u32>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds: u64 = env_or("SOAK_SECONDS", 600)?;
    let seed: u64 = env_or("SOAK_SEED", rand::random::<u32>().into())?;
    println!("soak: {seconds} s, seed {seed} (SOAK_SEED={seed} replays the chaos)");
    let binary = ethpipe_binary();
    let dir = tempfile::tempdir()?;
    let today = Utc::now().date_naive();
    let first = today - chrono::Days::new(DAYS as u64);
    let days: Vec<NaiveDate> = (0..DAYS)
        .map(|i| first + chrono::Days::new(i as u64))
        .collect();

    let anvil = Anvil::start_at(day_start(first) + 60).await?;
    let chain = anvil.chain().await?;
    let token = chain
        .deploy(
            "StandardToken",
            &[
                Arg::string("Soak"),
                Arg::string("SOAK"),
                Arg::uint(18),
                Arg::uint(10u128.pow(27)),
            ],
        )
        .await?;
    let node = TcpProxy::start(&format!("127.0.0.1:{}", anvil.port())).await?;
    let server = PrivatePostgres::start()?;
    let url = server.create_database("soak").await?;
    std::fs::write(
        dir.path().join("ethpipe.toml"),
        format!(
            "[[triggers]]\nname = \"every10\"\npipeline = \"token_transfers\"\n\
             schedule = \"*/10 * * * * *\"\nactive = true\nday_offset = 1\n\
             catchup_days = {DAYS}\nmax_attempts = 3\nbackoff_seconds = 2\ntimeout_seconds = 120\n"
        ),
    )?;
    let ethpipe = |database: &str, rpc: &str| {
        Ethpipe::new(&binary)
            .cwd(dir.path())
            .env("ETHPIPE_DATABASE_URL", database)
            .env("ETHPIPE_SOURCE", "rpc")
            .env("ETHPIPE_RPC_URL", rpc)
            .env("ETHPIPE_RPC_TIMEOUT", "5")
            .env("ETHPIPE_SCHEDULER_TICK_MS", "250")
    };
    let proxied = format!("http://127.0.0.1:{}", node.port());
    ethpipe(&url, &proxied)
        .run(&["trigger", "list"])
        .await
        .assert_success();
    {
        let client = connect(&url).await?;
        // The trigger has owed the chain's days since the first of them.
        client
            .execute(
                "UPDATE ethpipe.triggers SET active_since = now() - make_interval(days => $1)",
                &[&((DAYS - 1) as i32)],
            )
            .await?;
    }

    let mining = Arc::new(AtomicBool::new(true));
    let miner = tokio::spawn(mine(
        chain,
        token,
        days.clone(),
        Duration::from_secs(seconds / 2),
        Arc::clone(&mining),
    ));
    let mut replicas = vec![
        Replica::start(ethpipe(&url, &proxied)).await,
        Replica::start(ethpipe(&url, &proxied)).await,
    ];
    let mut counts = Counts::default();
    let mut rng = Rng(seed);
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(3000 + rng.next_u64() % 9000)).await;
        let fault = match rng.next_u64() % 6 {
            0 => {
                server.stop()?;
                tokio::time::sleep(Duration::from_millis(500 + rng.next_u64() % 4000)).await;
                server.resume()?;
                "postgres restart"
            }
            1 => {
                let victim = replicas.remove((rng.next_u64() % 2) as usize);
                victim.kill().await;
                replicas.push(Replica::start(ethpipe(&url, &proxied)).await);
                "replica kill -9"
            }
            2 => {
                let victim = replicas.remove((rng.next_u64() % 2) as usize);
                victim.terminate().await;
                replicas.push(Replica::start(ethpipe(&url, &proxied)).await);
                "replica SIGTERM"
            }
            3 => {
                node.stall();
                tokio::time::sleep(Duration::from_millis(1000 + rng.next_u64() % 6000)).await;
                node.resume();
                "node stall"
            }
            _ => {
                node.cut();
                "node drop"
            }
        };
        *counts.faults.entry(fault).or_default() += 1;
        println!("soak: {fault}");
    }
    mining.store(false, Ordering::Relaxed);
    let mined = miner.await??;

    let client = connect(&url).await?;
    let owed: Vec<String> = days.iter().map(NaiveDate::to_string).collect();
    let settled = Instant::now() + SETTLE;
    while loaded_days(&client).await? < owed.len() as i64 {
        if Instant::now() > settled {
            bail!("after the soak, not every due day was loaded within {SETTLE:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for replica in replicas {
        replica.terminate().await;
    }
    let report = check(&client, &owed).await?;

    let (from, to) = (owed[0].as_str(), owed[owed.len() - 1].as_str());
    let verified = ethpipe(&url, anvil.url())
        .run(&[
            "verify",
            "--from",
            from,
            "--to",
            to,
            "--pipeline",
            "token_transfers",
        ])
        .await;
    if verified.code != 0 {
        bail!("ethpipe verify is not clean:\n{}", verified.all());
    }
    let fresh = server.create_database("fresh").await?;
    ethpipe(&fresh, anvil.url())
        .run(&["backfill", "token_transfers", "--from", from, "--to", to])
        .await
        .assert_success();
    let fresh_client = connect(&fresh).await?;
    let (soaked, reloaded) = (
        day_digests(&client).await?,
        day_digests(&fresh_client).await?,
    );
    if soaked != reloaded {
        bail!("the soaked rows differ from a fresh load:\n{soaked:?}\n{reloaded:?}");
    }
    let faults: u32 = counts.faults.values().sum();
    println!(
        "soak: OK — {faults} faults injected {:?}; {mined} transfers mined over {} days; \
         {} runs ({} success, {} failed = retries); each day loaded once, verify clean, \
         rows equal a fresh load",
        counts.faults,
        owed.len(),
        report.runs,
        report.successes,
        report.failures
    );
    Ok(())
}

fn env_or(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(text) => text.parse().with_context(|| format!("{name}={text}")),
        Err(_) => Ok(default),
    }
}

fn ethpipe_binary() -> PathBuf {
    if let Ok(path) = std::env::var("ETHPIPE_BIN") {
        return path.into();
    }
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    PathBuf::from(target).join("debug/ethpipe")
}

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// Mines the chain's days one after the other, spread over `span`: blocks
/// of a few transfers `BLOCK_SECONDS` apart, then one block past the last
/// day's end so it is complete. Returns the transfers sent.
async fn mine(
    chain: Chain,
    token: String,
    days: Vec<NaiveDate>,
    span: Duration,
    mining: Arc<AtomicBool>,
) -> anyhow::Result<u64> {
    let blocks_per_day = 86_400 / BLOCK_SECONDS;
    let pause = span / (days.len() as u32 * blocks_per_day as u32).max(1);
    let mut sent = 0u64;
    chain.set_automine(false).await?;
    for day in &days {
        let mut ts = day_start(*day) + 600;
        while ts <= day_end(*day) {
            for i in 0..3u128 {
                let to = format!("0x{:040x}", 0xa11ce + (sent as u128 % 50) + i);
                chain
                    .submit(Tx {
                        to: Some(token.clone()),
                        data: encode_call(
                            "transfer(address,uint256)",
                            &[Arg::address(&to), Arg::uint(1 + sent as u128)],
                        ),
                        gas: Some(100_000),
                        ..Tx::default()
                    })
                    .await?;
                sent += 1;
            }
            chain.mine(ts).await?;
            ts += BLOCK_SECONDS;
            if mining.load(Ordering::Relaxed) {
                tokio::time::sleep(pause).await;
            }
        }
    }
    let last = days.last().context("no days")?;
    chain.mine(day_end(*last) + 60).await?;
    // anvil's `finalized` is 64 blocks below its latest: 64 more make the
    // last day final for ethpipe's finality gate.
    for block in 1..=64 {
        chain.mine(day_end(*last) + 60 + block * 12).await?;
    }
    chain.set_automine(true).await?;
    Ok(sent)
}

/// Successful runs per day.
async fn loaded_days(client: &tokio_postgres::Client) -> anyhow::Result<i64> {
    Ok(client
        .query_one(
            "SELECT count(DISTINCT day) FROM ethpipe.runs WHERE status = 'success'",
            &[],
        )
        .await?
        .get(0))
}

struct Report {
    runs: i64,
    successes: i64,
    failures: i64,
}

/// Each owed day loaded by exactly one successful run; no run left running.
async fn check(client: &tokio_postgres::Client, owed: &[String]) -> anyhow::Result<Report> {
    let rows = client
        .query(
            "SELECT day::text, count(*) FILTER (WHERE status = 'success') FROM ethpipe.runs
             GROUP BY day ORDER BY day",
            &[],
        )
        .await?;
    let per_day: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let expected: Vec<(String, i64)> = owed.iter().map(|d| (d.clone(), 1)).collect();
    if per_day != expected {
        bail!("days and their successful runs: {per_day:?}, expected {expected:?}");
    }
    let counts = client
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE status = 'success'),
                    count(*) FILTER (WHERE status = 'failed'),
                    count(*) FILTER (WHERE status = 'running')
             FROM ethpipe.runs",
            &[],
        )
        .await?;
    let running: i64 = counts.get(3);
    if running != 0 {
        bail!("{running} run(s) left running");
    }
    Ok(Report {
        runs: counts.get(0),
        successes: counts.get(1),
        failures: counts.get(2),
    })
}

/// Per day: rows and a digest of them in key order.
async fn day_digests(
    client: &tokio_postgres::Client,
) -> anyhow::Result<Vec<(String, i64, String)>> {
    let rows = client
        .query(
            "SELECT (block_timestamp AT TIME ZONE 'UTC')::date::text, count(*),
                    md5(string_agg(concat_ws(',', token_address, from_address, to_address,
                        value::text, transaction_hash, log_index::text, block_number::text,
                        block_hash), ';' ORDER BY transaction_hash, log_index))
             FROM ethereum.token_transfers GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}
