//! A day's derived rows (`token_daily_stats` and the busy tokens' top
//! counterparties) are aggregated by side, with the ranking cut short by a
//! histogram of group sizes. They must equal what the plain definitions
//! give — `count(DISTINCT …)` per token, and every (token, address) group
//! ranked — on days built to sit on the edges: ties across the 100th rank,
//! exactly 100 groups, no sender at all, NULL values, the 500-transfer line.

use ethpipe_sinks::postgres::day::daily_statements;
use ethpipe_sinks::{Database, DatabaseUrl};
use ethpipe_testkit::TestDatabase;

const DAY: &str = "2024-03-01";

/// Each token's rows as (token, sender, receiver, value) from
/// `generate_series(1, n) AS i`.
const TOKENS: &[(&str, &str, &str, &str, &str)] = &[
    // 50 senders with 10 transfers, 120 with 5 (ties from rank 51 to 170,
    // across the cut at 100), 1,500 with one; receivers spread over 701
    // addresses, a tenth of them NULL, and a tenth of the values NULL.
    (
        "busy_ties",
        "2600",
        "CASE WHEN i <= 500 THEN 'a' || (i % 50) WHEN i <= 1100 THEN 'b' || (i % 120) ELSE 'c' || i END",
        "CASE WHEN i % 10 = 0 THEN NULL ELSE 'r' || (i * 7 % 701) END",
        "CASE WHEN i % 10 = 3 THEN NULL ELSE i * 1000000000000000000::numeric END",
    ),
    // 501 transfers from exactly 100 senders; 99 receivers.
    (
        "busy_exact",
        "501",
        "'s' || (i % 100)",
        "'r' || (i % 99)",
        "i",
    ),
    // 500 transfers: not busy, nothing kept.
    ("quiet", "500", "'s' || (i % 7)", "'r' || (i % 3)", "1"),
    // Mints: no sender at all, 40 receivers, every value NULL.
    ("mints", "600", "NULL", "'r' || (i % 40)", "NULL"),
    // One sender, one receiver.
    ("single", "900", "'only'", "'sink'", "2"),
];

#[tokio::test]
async fn aggregates_equal_the_plain_definitions_on_edge_days() {
    let pg = TestDatabase::create().await.expect("database");
    let url: DatabaseUrl = pg.url.parse().expect("url");
    Database::open(&url).await.expect("migrate");
    let client = pg.client().await.expect("client");

    client
        .batch_execute(
            "CREATE TABLE day_rows (token_address text COLLATE \"C\" NOT NULL,
                 from_address text COLLATE \"C\", to_address text COLLATE \"C\", value numeric(78, 0))",
        )
        .await
        .expect("table");
    for (token, n, sender, receiver, value) in TOKENS {
        client
            .batch_execute(&format!(
                "INSERT INTO day_rows
                 SELECT '{token}', {sender}, {receiver}, {value} FROM generate_series(1, {n}) AS i"
            ))
            .await
            .expect("rows");
    }

    let (aggregate, statements) = daily_statements("day_rows");
    let day: chrono::NaiveDate = DAY.parse().expect("day");
    client.batch_execute("BEGIN").await.expect("begin");
    client.batch_execute(&aggregate).await.expect("aggregate");
    for statement in &statements {
        client.execute(statement, &[&day]).await.expect("replace");
    }
    client.batch_execute("COMMIT").await.expect("commit");

    let stats_definition = "SELECT token_address, count(*) AS transfer_count,
            count(DISTINCT from_address) AS unique_senders,
            count(DISTINCT to_address) AS unique_receivers,
            coalesce(sum(value), 0) AS volume_raw
        FROM day_rows GROUP BY token_address";
    let stats_loaded = "SELECT token_address, transfer_count, unique_senders, unique_receivers,
            volume_raw
        FROM ethereum.token_daily_stats WHERE day = DATE '2024-03-01'";
    let kept_definition = "SELECT token_address, side, rank, address, transfers, volume_raw
        FROM (SELECT *, row_number() OVER (PARTITION BY token_address, side
                                           ORDER BY transfers DESC, address) AS rank
              FROM (SELECT token_address, 'sender' AS side, from_address AS address,
                           count(*) AS transfers, coalesce(sum(value), 0) AS volume_raw
                    FROM day_rows WHERE from_address IS NOT NULL GROUP BY 1, 3
                    UNION ALL
                    SELECT token_address, 'receiver', to_address, count(*), coalesce(sum(value), 0)
                    FROM day_rows WHERE to_address IS NOT NULL GROUP BY 1, 3) AS groups
              WHERE token_address IN (SELECT token_address FROM day_rows
                                      GROUP BY token_address HAVING count(*) > 500)) AS ranked
        WHERE rank <= 100";
    let kept_loaded = "SELECT token_address, side, CAST(rank AS bigint), address, transfers,
            volume_raw
        FROM ethereum.token_daily_counterparties WHERE day = DATE '2024-03-01'";

    for (what, definition, loaded) in [
        ("token_daily_stats", stats_definition, stats_loaded),
        ("token_daily_counterparties", kept_definition, kept_loaded),
    ] {
        let differ: i64 = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM (({definition} EXCEPT {loaded})
                                           UNION ALL ({loaded} EXCEPT {definition})) AS d"
                ),
                &[],
            )
            .await
            .expect("compare")
            .get(0);
        assert_eq!(differ, 0, "{what}: rows differ from the definition");
    }

    // The edges were reached: 100 kept a side where more groups tie across
    // the cut, exactly 100 where there are exactly 100, none for the quiet
    // token, and no sender for the mints.
    let kept = |token: &'static str, side: &'static str| {
        let client = &client;
        async move {
            client
                .query_one(
                    "SELECT count(*) FROM ethereum.token_daily_counterparties
                     WHERE token_address = $1 AND side = $2",
                    &[&token, &side],
                )
                .await
                .expect("count")
                .get::<_, i64>(0)
        }
    };
    assert_eq!(kept("busy_ties", "sender").await, 100);
    assert_eq!(kept("busy_ties", "receiver").await, 100);
    assert_eq!(kept("busy_exact", "sender").await, 100);
    assert_eq!(kept("busy_exact", "receiver").await, 99);
    assert_eq!(kept("quiet", "sender").await, 0);
    assert_eq!(kept("mints", "sender").await, 0);
    assert_eq!(kept("mints", "receiver").await, 40);
    assert_eq!(kept("single", "sender").await, 1);
    let tokens: i64 = client
        .query_one(
            "SELECT count(*) FROM ethereum.token_daily_stats WHERE day = DATE '2024-03-01'",
            &[],
        )
        .await
        .expect("stats")
        .get(0);
    assert_eq!(tokens, TOKENS.len() as i64);
}
