//! The ledger on PostgreSQL (schema `ethpipe`): a small connection pool, how
//! values bind and columns read, and session advisory locks.
//!
//! Connections come from a pool that checks each one before handing it out,
//! so after the server restarts (or a connection is killed) the next ledger
//! operation simply gets a new connection; nothing is held for the life of
//! the process. A lock holds a connection of its own: the server releases the
//! lock when that connection ends, so a killed process never leaves one behind.

use std::error::Error;
use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::{Client, Config, Row};

use super::error::LedgerError;
use super::locks::{lock_key, Lock, LockName};
use super::shared::{self, Backend};
use super::statements::{Cell, Record, Statement, Value};
use crate::tls::PgTls;
use crate::Commit;

/// Ledger statements are short; a few connections serve a whole backfill.
const POOL_SIZE: usize = 4;

pub(crate) struct PgBackend {
    pool: Pool,
    /// For lock connections, which live outside the pool.
    config: Config,
    tls: PgTls,
    /// The URL without its password, for messages.
    shown: String,
}

impl PgBackend {
    /// Connects lazily: nothing is opened until the first operation.
    pub fn new(
        mut config: Config,
        tls: &PgTls,
        shown: &str,
        read_only: Option<Duration>,
    ) -> Result<Self, LedgerError> {
        if let Some(timeout) = read_only {
            // The server's reads: nothing they run can write, and a slow one is cut off.
            let settings = format!(
                "-c default_transaction_read_only=on -c statement_timeout={}",
                timeout.as_millis().max(1)
            );
            let options = config
                .get_options()
                .map_or(settings.clone(), |own| format!("{own} {settings}"));
            config.options(&options);
            config.connect_timeout(Duration::from_secs(5));
        }
        let manager = Manager::from_config(
            config.clone(),
            tls.connector(),
            ManagerConfig {
                // A pooled connection is tried before reuse, so one the server
                // dropped (a restart, a kill) is replaced instead of failing.
                recycling_method: RecyclingMethod::Verified,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|source| LedgerError::PoolSetup { source })?;
        Ok(PgBackend {
            pool,
            config,
            tls: tls.clone(),
            shown: shown.to_string(),
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, LedgerError> {
        self.pool.get().await.map_err(|error| match error {
            deadpool_postgres::PoolError::Backend(source) => LedgerError::PostgresConnect {
                target: self.shown.clone(),
                source,
            },
            source => LedgerError::Pool {
                target: self.shown.clone(),
                source,
            },
        })
    }
}

#[async_trait]
impl Backend for PgBackend {
    async fn execute(
        &self,
        statement: &'static Statement,
        params: Vec<Value>,
    ) -> Result<u64, LedgerError> {
        execute(&**self.client().await?, statement, &params).await
    }

    async fn query(
        &self,
        statement: &'static Statement,
        params: Vec<Value>,
    ) -> Result<Vec<Record>, LedgerError> {
        let client = self.client().await?;
        let rows = client
            .query(statement.sql, &bind(&params))
            .await
            .map_err(|source| failed(statement, source))?;
        rows.iter().map(|row| record(row, statement)).collect()
    }

    async fn lock(&self, name: LockName, wait: bool) -> Result<Option<Lock>, LedgerError> {
        let (client, connection) =
            self.config
                .connect(self.tls.connector())
                .await
                .map_err(|source| LedgerError::PostgresConnect {
                    target: self.shown.clone(),
                    source,
                })?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!("PostgreSQL lock connection closed: {error}");
            }
        });
        let key = lock_key(&name.text());
        let taking = |source| LedgerError::Postgres {
            context: "taking a lock",
            source,
        };
        if wait {
            let waited = client.execute("SELECT pg_advisory_lock($1)", &[&key]).await;
            waited.map_err(taking)?;
            return Ok(Some(Lock::Postgres(client)));
        }
        let row = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .await
            .map_err(taking)?;
        Ok(row.get::<_, bool>(0).then_some(Lock::Postgres(client)))
    }
}

/// Records a committed day's bookkeeping (the run's success, the variable it
/// sets) on the day's own connection, inside its open transaction, so it
/// commits together with the rows.
pub(crate) async fn record_commit(
    client: &Client,
    commit: &Commit,
    rows: u64,
    model_failure: Option<&str>,
) -> Result<(), LedgerError> {
    for step in shared::commit_bookkeeping(commit, rows, model_failure) {
        step.check(execute(client, step.statement, &step.params).await?)?;
    }
    Ok(())
}

async fn execute(
    client: &Client,
    statement: &'static Statement,
    params: &[Value],
) -> Result<u64, LedgerError> {
    client
        .execute(statement.sql, &bind(params))
        .await
        .map_err(|source| failed(statement, source))
}

fn failed(statement: &Statement, source: tokio_postgres::Error) -> LedgerError {
    LedgerError::Postgres {
        context: statement.context,
        source,
    }
}

fn bind(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

/// Reads every column by the type the server reports.
fn record(row: &Row, statement: &Statement) -> Result<Record, LedgerError> {
    let read = |e| failed(statement, e);
    let mut cells = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let cell = if *ty == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)
                .map_err(read)?
                .map(Cell::Int)
        } else if *ty == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)
                .map_err(read)?
                .map(|n| Cell::Int(n.into()))
        } else if *ty == Type::BOOL {
            row.try_get::<_, Option<bool>>(i)
                .map_err(read)?
                .map(Cell::Bool)
        } else if *ty == Type::TIMESTAMPTZ {
            row.try_get::<_, Option<chrono::DateTime<chrono::Utc>>>(i)
                .map_err(read)?
                .map(Cell::Time)
        } else if *ty == Type::DATE {
            row.try_get::<_, Option<chrono::NaiveDate>>(i)
                .map_err(read)?
                .map(Cell::Date)
        } else {
            row.try_get::<_, Option<String>>(i)
                .map_err(read)?
                .map(Cell::Text)
        };
        cells.push(cell.unwrap_or(Cell::Null));
    }
    Ok(Record {
        cells,
        context: statement.context,
    })
}

/// Binds to the type PostgreSQL inferred for the parameter: integers go in
/// as `integer` or `bigint`, days as `date`, instants as `timestamptz`.
impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self {
            Value::Int(None) | Value::Text(None) | Value::Day(None) => Ok(IsNull::Yes),
            Value::Int(Some(n)) if *ty == Type::INT4 => i32::try_from(*n)?.to_sql_checked(ty, out),
            Value::Int(Some(n)) => n.to_sql_checked(ty, out),
            Value::Text(Some(text)) => text.to_sql_checked(ty, out),
            Value::Bool(b) => b.to_sql_checked(ty, out),
            Value::Day(Some(day)) => day.naive().to_sql_checked(ty, out),
            Value::Time(instant) => instant.to_sql_checked(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Each variant checks its own type in `to_sql`.
        true
    }

    to_sql_checked!();
}
