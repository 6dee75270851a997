//! The PostgreSQL sink: schema `ethereum` for the data, schema `ethpipe` for the ledger.
//!
//! - [`migrations`]: versioned schema changes, applied under an advisory lock.
//! - [`copy`]: the binary `COPY` encoder (rows of any dataset → PGCOPY bytes).
//! - [`day`]: loading a day and committing it atomically.
//! - [`partitions`]: a day as its own partition, built aside and swapped in.
//! - [`upgrade`]: the in-place move of a single table into day partitions.

pub mod copy;
pub mod day;
pub mod migrations;
pub mod partitions;
mod read;
pub mod upgrade;

use async_trait::async_trait;
use ethpipe_core::dataset::Dialect;
use ethpipe_core::{Day, Pipeline, Slice, TokenFilter};
use tokio_postgres::{Client, Config};

use crate::files::RowSink;
use crate::sink::{DayWriter, Sink};
use crate::tls::PgTls;
use crate::SinkError;

pub struct PgDatabase {
    connector: Connector,
    /// Connection for short ledger statements; loads get their own.
    client: Client,
}

/// Opens connections to one database (a load opens a second one to build a
/// day's indexes on two sessions at once).
#[derive(Clone)]
pub struct Connector {
    config: Config,
    tls: PgTls,
    /// The URL without its password, for errors.
    shown: String,
}

impl Connector {
    pub async fn open(&self) -> Result<Client, SinkError> {
        open_client(&self.config, &self.tls, &self.shown).await
    }
}

impl PgDatabase {
    pub async fn connect(config: Config, tls: PgTls, shown: &str) -> Result<PgDatabase, SinkError> {
        let connector = Connector {
            config,
            tls,
            shown: shown.to_string(),
        };
        let client = connector.open().await?;
        Ok(PgDatabase { connector, client })
    }

    pub async fn migrate(
        &self,
        progress: &dyn upgrade::UpgradeProgress,
    ) -> Result<Vec<u32>, SinkError> {
        migrations::apply(&self.client, progress).await
    }

    pub async fn new_client(&self) -> Result<Client, SinkError> {
        self.connector.open().await
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}

#[async_trait]
impl Sink for PgDatabase {
    async fn begin(&self, slice: &Slice) -> Result<Box<dyn DayWriter>, SinkError> {
        let client = self.connector.open().await?;
        Ok(Box::new(
            day::PgDayWriter::begin(client, self.connector.clone(), slice.clone()).await?,
        ))
    }

    fn ddl(&self, pipeline: Pipeline) -> Vec<String> {
        crate::ddl::create(pipeline, Dialect::Postgres)
    }

    async fn count_day(
        &self,
        pipeline: Pipeline,
        day: Day,
        filter: Option<&TokenFilter>,
    ) -> Result<u64, SinkError> {
        let column = pipeline.day_column();
        let tokens = filter.map(|f| f.addresses().to_vec());
        let sql = format!(
            "SELECT count(*) FROM {} WHERE {column} >= $1 AND {column} < $2 \
             AND (CAST($3 AS text[]) IS NULL OR {} = ANY($3))",
            crate::ddl::table(pipeline, Dialect::Postgres),
            pipeline.filter_column()
        );
        let row = self
            .client
            .query_one(&sql, &[&day.start(), &day.end(), &tokens])
            .await
            .map_err(|e| SinkError::db("counting a day's rows", e))?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// On a connection of its own, so the rows stream without holding up
    /// the ledger's statements.
    async fn read_day(
        &self,
        pipeline: Pipeline,
        day: Day,
        out: &mut dyn RowSink,
    ) -> Result<u64, SinkError> {
        let client = self.new_client().await?;
        read::read_day(&client, pipeline, day, out).await
    }
}

/// Runs one SQL model's statements on `client`, inside the transaction the
/// caller holds open. `:day` is rewritten to `$1`, which is declared as a
/// `date` parameter, so the day is always bound, never formatted into the
/// SQL. Returns the rows the statements affected.
pub(crate) async fn execute_model(
    client: &Client,
    statements: &[String],
    day: Day,
) -> Result<u64, SinkError> {
    let fail = |e: tokio_postgres::Error| SinkError::Rejected(describe(&e));
    let day_value = day.naive();
    let mut rows = 0;
    for statement in statements {
        let sql = crate::models::day_placeholder_to_dollar(statement);
        let prepared = client
            .prepare_typed(&sql, &[tokio_postgres::types::Type::DATE])
            .await
            .map_err(fail)?;
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            match prepared.params().len() {
                0 => Vec::new(),
                1 => vec![&day_value],
                n => {
                    return Err(SinkError::Rejected(format!(
                        "a model may use only the day parameter ($1 or :day), this statement has {n} parameters"
                    )))
                }
            };
        rows += client.execute(&prepared, &params).await.map_err(fail)?;
    }
    Ok(rows)
}

/// Opens one connection; its driver task runs until the client is dropped.
pub(crate) async fn open_client(
    config: &Config,
    tls: &PgTls,
    shown: &str,
) -> Result<Client, SinkError> {
    let (client, connection) = config
        .connect(tls.connector())
        .await
        .map_err(|e| SinkError::connect(shown, e))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!("PostgreSQL connection closed: {error}");
        }
    });
    Ok(client)
}

/// tokio-postgres' Display for server errors is just "db error"; show the server's message.
pub fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    ethpipe_core::with_causes(error.to_string(), error)
}
