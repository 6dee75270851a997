//! A table's secondary indexes set aside while a day's rows go in, and built
//! again from the full table after, when that is cheaper than maintaining
//! them row by row; all inside the day's transaction.
//!
//! SQLite has no partitions, so a day cannot be loaded into a table of its
//! own and swapped in as PostgreSQL does. Each row inserted into an indexed
//! table descends every index at a random place (addresses, hashes); a
//! `CREATE INDEX` sorts the table's entries once and writes the B-tree in
//! order. The 1.3 M-row benchmark day into an empty table, in the sqlite3
//! shell with a 64 MiB cache, took 15 s of CPU the second way against 25 s
//! (end-to-end figures: bench/README.md). But a build sorts the whole table,
//! not only the day: it is taken only while the table holds fewer rows than
//! the day brings (the build then sorts at most twice the day's rows).

use rusqlite::{params, Connection};

use crate::SinkError;

fn fail(context: &'static str) -> impl Fn(rusqlite::Error) -> SinkError {
    move |e| SinkError::db(context, e)
}

/// The secondary indexes dropped for the insert, as the statements that
/// build them again.
#[must_use = "the indexes are gone until rebuild runs"]
pub(super) struct SetAside {
    definitions: Vec<String>,
}

/// Drops `table`'s secondary indexes when the table (in the `main` schema)
/// holds fewer rows than `incoming`; `None` keeps them. The primary key stays:
/// it is the table's own constraint and catches a duplicated key at once.
pub(super) fn set_aside_when_cheaper(
    connection: &Connection,
    table: &str,
    incoming: u64,
) -> Result<Option<SetAside>, SinkError> {
    if rows_up_to(connection, table, incoming)? >= incoming {
        return Ok(None);
    }
    // `sql` is NULL for the indexes behind PRIMARY KEY and UNIQUE constraints.
    let indexes: Vec<(String, String)> = {
        let mut statement = connection
            .prepare(
                "SELECT name, sql FROM main.sqlite_master
                 WHERE type = 'index' AND tbl_name = ?1 AND sql IS NOT NULL",
            )
            .map_err(fail("listing the table's indexes"))?;
        let rows = statement
            .query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(fail("listing the table's indexes"))?;
        rows.collect::<Result<_, _>>()
            .map_err(fail("listing the table's indexes"))?
    };
    for (name, _) in &indexes {
        connection
            .execute_batch(&format!(
                "DROP INDEX main.\"{}\"",
                name.replace('"', "\"\"")
            ))
            .map_err(fail("setting the table's indexes aside"))?;
    }
    Ok(Some(SetAside {
        definitions: indexes.into_iter().map(|(_, sql)| sql).collect(),
    }))
}

impl SetAside {
    /// Builds every index set aside again, over the whole table.
    pub(super) fn rebuild(self, connection: &Connection) -> Result<(), SinkError> {
        for definition in &self.definitions {
            connection
                .execute_batch(definition)
                .map_err(fail("building the table's indexes"))?;
        }
        Ok(())
    }
}

/// The table's row count, counted no further than `limit`: the question is
/// only whether it reaches the day's size, and a year of history need not be
/// walked to answer it.
fn rows_up_to(connection: &Connection, table: &str, limit: u64) -> Result<u64, SinkError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    connection
        .query_row(
            &format!("SELECT count(*) FROM (SELECT 1 FROM main.\"{table}\" LIMIT ?1)"),
            params![limit],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n.max(0) as u64)
        .map_err(fail("counting the table's rows"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definitions of `t`'s indexes that `set_aside_when_cheaper` may drop.
    fn definitions(connection: &Connection) -> Vec<String> {
        let mut statement = connection
            .prepare(
                "SELECT sql FROM sqlite_master
                 WHERE type = 'index' AND tbl_name = 't' AND sql IS NOT NULL ORDER BY name",
            )
            .expect("prepare");
        let rows = statement.query_map([], |r| r.get(0)).expect("query");
        rows.collect::<Result<_, _>>().expect("rows")
    }

    /// A table with a primary key, two secondary indexes and `rows` rows.
    fn table_with(rows: i64) -> Connection {
        let connection = Connection::open_in_memory().expect("open");
        connection
            .execute_batch(
                "CREATE TABLE t (k TEXT NOT NULL, n INTEGER NOT NULL, a TEXT, PRIMARY KEY (k, n));
                 CREATE INDEX t_a_idx ON t (a, n);
                 CREATE INDEX t_n_idx ON t (n) WHERE a IS NOT NULL;",
            )
            .expect("create");
        for n in 0..rows {
            connection
                .execute("INSERT INTO t VALUES ('k', ?1, 'a')", [n])
                .expect("insert");
        }
        connection
    }

    #[test]
    fn a_table_smaller_than_the_day_gets_the_same_indexes_back() {
        let connection = table_with(2);
        let before = definitions(&connection);
        assert_eq!(before.len(), 2);
        let set_aside = set_aside_when_cheaper(&connection, "t", 3)
            .expect("set aside")
            .expect("2 rows < 3 incoming: the indexes are built after");
        assert!(definitions(&connection).is_empty());
        set_aside.rebuild(&connection).expect("rebuild");
        assert_eq!(definitions(&connection), before);
        let primary_key: i64 = connection
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 't'",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(primary_key, 3, "the primary key's own index stays");
    }

    #[test]
    fn a_table_as_large_as_the_day_keeps_its_indexes() {
        let connection = table_with(3);
        let before = definitions(&connection);
        let kept = set_aside_when_cheaper(&connection, "t", 3).expect("decide");
        assert!(kept.is_none());
        assert_eq!(definitions(&connection), before);
    }

    #[test]
    fn a_transaction_that_never_commits_leaves_the_indexes() {
        let connection = table_with(1);
        let before = definitions(&connection);
        connection.execute_batch("BEGIN IMMEDIATE").expect("begin");
        let set_aside = set_aside_when_cheaper(&connection, "t", 10).expect("set aside");
        assert!(set_aside.is_some());
        connection.execute_batch("ROLLBACK").expect("rollback");
        assert_eq!(definitions(&connection), before);
    }
}
