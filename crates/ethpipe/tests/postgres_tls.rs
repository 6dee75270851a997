//! TLS to PostgreSQL, end to end with the real binary and the real server:
//! each `sslmode` does what libpq's does, the server confirms which sessions
//! were encrypted, certificate problems are one line naming the problem, and
//! `verify-ca`/`verify-full` pass with a CA the test generates (through the
//! testkit's TLS front, since the shared server's certificate is self-signed).

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use ethpipe_testkit::fixtures::day_transfers;
use ethpipe_testkit::{pg, Output, PgTlsFront, TestDatabase};
use tokio::io::AsyncBufReadExt;
use tokio_postgres::Client;

const DAY: &str = "2024-03-01";

/// `db`'s URL with `query` appended (`sslmode=…`).
fn with_query(db: &TestDatabase, query: &str) -> String {
    format!("{}?{query}", db.url)
}

/// `db`'s URL with host and port replaced by `host:port` (the TLS front).
fn through(db: &TestDatabase, host: &str, port: u16, query: &str) -> String {
    format!("postgres://postgres@{host}:{port}/{}?{query}", db.name)
}

/// Records, for every session that runs DDL in this database (the sink's
/// migrations and each day's staging table), whether the server saw it over TLS.
async fn note_tls_of_ddl_sessions(client: &Client) {
    client
        .batch_execute(
            "CREATE TABLE public.tls_seen (pid int, ssl bool);
             CREATE FUNCTION public.note_tls() RETURNS event_trigger LANGUAGE plpgsql AS $$
             BEGIN
               INSERT INTO public.tls_seen
                 SELECT pid, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid();
             END $$;
             CREATE EVENT TRIGGER note_tls ON ddl_command_end EXECUTE FUNCTION public.note_tls();",
        )
        .await
        .expect("event trigger");
}

/// (sessions seen, of which over TLS).
async fn tls_seen(client: &Client) -> (i64, i64) {
    let row = client
        .query_one(
            "SELECT count(DISTINCT pid), count(DISTINCT pid) FILTER (WHERE ssl) FROM public.tls_seen",
            &[],
        )
        .await
        .expect("tls_seen");
    (row.get(0), row.get(1))
}

/// Loads one day of fixture rows into `db` through `url` and checks the rows.
async fn load_a_day(harness: &Harness, db: &TestDatabase, url: &str) -> Client {
    let rows = day_transfers(DAY, 40, 1);
    harness.bigquery.set_transfers(rows.clone());
    let out = harness
        .ethpipe(url)
        .run(&["run", "token_transfers", "--date", DAY])
        .await;
    out.assert_success();
    let client = db.client().await.unwrap();
    assert_eq!(pg_transfers(&client, "").await, on_day(&rows, DAY));
    client
}

/// Exit 2, one `error:` line that says `says`, and nothing created in `db`.
async fn assert_refused(out: &Output, db: &TestDatabase, says: &[&str]) {
    assert_eq!(out.code, 2, "{out:?}");
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|line| line.starts_with("error"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", out.stderr);
    for part in says {
        assert!(
            errors[0].contains(part),
            "expected {part:?} in {:?}",
            errors[0]
        );
    }
    let client = db.client().await.unwrap();
    assert!(!schema_exists(&client, "ethereum").await);
    assert!(!schema_exists(&client, "ethpipe").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_loads_a_day_and_the_server_saw_tls() {
    let harness = Harness::start().await;
    let db = fresh_database().await;
    note_tls_of_ddl_sessions(&db.client().await.unwrap()).await;

    let client = load_a_day(&harness, &db, &with_query(&db, "sslmode=require")).await;
    let (sessions, encrypted) = tls_seen(&client).await;
    assert!(sessions >= 1, "no DDL session was recorded");
    assert_eq!(
        encrypted, sessions,
        "every session that ran DDL was encrypted"
    );
    assert_eq!(
        pg_runs(&client).await,
        vec![("success".into(), Some(40), Some(40), None)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefer_is_the_default_and_ends_up_on_tls_and_disable_stays_plain() {
    let harness = Harness::start().await;
    for (query, tls) in [
        ("", true),
        ("sslmode=prefer", true),
        ("sslmode=disable", false),
    ] {
        let db = fresh_database().await;
        note_tls_of_ddl_sessions(&db.client().await.unwrap()).await;
        let url = if query.is_empty() {
            db.url.clone()
        } else {
            with_query(&db, query)
        };
        let client = load_a_day(&harness, &db, &url).await;
        let (sessions, encrypted) = tls_seen(&client).await;
        assert!(sessions >= 1, "{query:?}: no DDL session was recorded");
        let expected = if tls { sessions } else { 0 };
        assert_eq!(encrypted, expected, "{query:?}: sessions over TLS");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_refuses_the_self_signed_server_in_one_line() {
    let harness = Harness::start().await;
    let db = fresh_database().await;
    let url = with_query(&db, "sslmode=verify-full");
    let run = ["run", "token_transfers", "--date", DAY];

    // With the machine's own roots: Debian keeps the snakeoil certificate in
    // /etc/ssl/certs, so depending on the machine the chain or the name fails.
    let out = harness.ethpipe(&url).run(&run).await;
    assert_refused(&out, &db, &["cannot connect to", "TLS handshake"]).await;
    let line = out.stderr.lines().find(|l| l.starts_with("error")).unwrap();
    assert!(
        line.contains("not signed by a trusted root") || line.contains("not valid for name"),
        "{line}"
    );

    // With roots that cannot have signed it, the issuer is what fails.
    let unrelated = PgTlsFront::start(&upstream(), &["localhost"])
        .await
        .unwrap();
    let roots = unrelated.write_ca(harness.dir.path()).unwrap();
    let out = harness
        .ethpipe(&url)
        .env("SSL_CERT_FILE", roots.display().to_string())
        .env(
            "SSL_CERT_DIR",
            harness.dir.path().join("no-such-dir").display().to_string(),
        )
        .run(&run)
        .await;
    assert_refused(
        &out,
        &db,
        &[
            "cannot connect to",
            "not signed by a trusted root",
            "sslrootcert",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_ca_passes_with_the_generated_ca_and_verify_full_checks_the_name() {
    let harness = Harness::start().await;
    let front = PgTlsFront::start(&upstream(), &["localhost"])
        .await
        .unwrap();
    let ca = front.write_ca(harness.dir.path()).unwrap();
    let root = format!("sslrootcert={}", ca.display());

    // The certificate names "localhost", the URL says 127.0.0.1: the chain
    // is good, which is all verify-ca asks.
    let db = fresh_database().await;
    let url = through(
        &db,
        "127.0.0.1",
        front.port(),
        &format!("sslmode=verify-ca&{root}"),
    );
    load_a_day(&harness, &db, &url).await;
    let after_verify_ca = front.handshakes();
    assert!(after_verify_ca >= 1, "the load went through the TLS front");

    // verify-full refuses the same certificate for 127.0.0.1, naming both names.
    let db = fresh_database().await;
    let url = through(
        &db,
        "127.0.0.1",
        front.port(),
        &format!("sslmode=verify-full&{root}"),
    );
    let out = harness
        .ethpipe(&url)
        .run(&["run", "token_transfers", "--date", DAY])
        .await;
    assert_refused(&out, &db, &["not valid for name", "127.0.0.1", "localhost"]).await;

    // ... and accepts it for the name it carries.
    let url = through(
        &db,
        "localhost",
        front.port(),
        &format!("sslmode=verify-full&{root}"),
    );
    load_a_day(&harness, &db, &url).await;
    assert!(front.handshakes() > after_verify_ca);

    // Without the CA, verify-ca is refused like any unknown issuer.
    let db = fresh_database().await;
    let url = through(&db, "127.0.0.1", front.port(), "sslmode=verify-ca");
    let out = harness
        .ethpipe(&url)
        .run(&["run", "token_transfers", "--date", DAY])
        .await;
    assert_refused(&out, &db, &["not signed by a trusted root"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tls_settings_are_one_line_exit_2_and_keep_the_password_out() {
    let harness = Harness::start().await;
    let db = fresh_database().await;
    let password_url = |query: &str| {
        format!(
            "postgres://postgres:hunter2@127.0.0.1:5432/{}?{query}",
            db.name
        )
    };
    let cases = [
        (
            "sslmode=bogus",
            "sslmode 'bogus' is not one of disable, prefer, require, verify-ca, verify-full",
        ),
        (
            "sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem",
            "cannot read sslrootcert /nonexistent/ca.pem",
        ),
    ];
    for (query, says) in cases {
        let out = harness
            .ethpipe(&password_url(query))
            .run(&["run", "token_transfers", "--date", DAY])
            .await;
        assert_refused(&out, &db, &["invalid --database-url", says]).await;
        assert!(!out.all().contains("hunter2"), "{query}: {}", out.all());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reads_over_tls() {
    let harness = Harness::start().await;
    let db = fresh_database().await;
    load_a_day(&harness, &db, &with_query(&db, "sslmode=require")).await;

    let mut child = harness
        .ethpipe(&with_query(&db, "sslmode=require"))
        .command(&["serve", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("ethpipe serve starts");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let base = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.split("dashboard and API on ").nth(1) {
                return rest
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .trim_end_matches('/')
                    .to_string();
            }
        }
        panic!("ethpipe serve ended without announcing its address");
    })
    .await
    .expect("ethpipe serve announces its address");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    // /readyz reads through the read pool, /metrics through the ledger's.
    for path in ["/readyz", "/metrics"] {
        let response = reqwest::get(format!("{base}{path}")).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let client = db.client().await.unwrap();
    let row = client
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE s.ssl)
             FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
             WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    let (sessions, encrypted): (i64, i64) = (row.get(0), row.get(1));
    assert!(
        sessions >= 2,
        "serve keeps its pooled sessions open: {sessions}"
    );
    assert_eq!(encrypted, sessions, "every serve session is encrypted");
    child.kill().await.unwrap();
}

/// The test server's `host:port`, which the front forwards to.
fn upstream() -> String {
    let url = pg::admin_url();
    let authority = url.split("://").nth(1).unwrap_or("127.0.0.1:5432");
    let authority = authority.split(['/', '?']).next().unwrap_or(authority);
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:5432")
    }
}
