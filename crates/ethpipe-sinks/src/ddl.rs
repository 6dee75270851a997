//! A dataset's table, written from its description for either store:
//! PostgreSQL keeps it in schema `ethereum` with exact `numeric(78,0)` and
//! `timestamptz`; SQLite (no schemas) keeps uint256 values as decimal TEXT so
//! nothing is rounded and timestamps as fixed-width ISO-8601 TEXT so they
//! sort and compare as text. In PostgreSQL a dataset that replaces its day
//! ([`LoadMode::ReplaceDay`]) is partitioned by range on its day column, one
//! partition per UTC day (`postgres/partitions.rs` loads and swaps them).

use ethpipe_core::dataset::{Column, ColumnType, Dialect, LoadMode};
use ethpipe_core::{Day, Pipeline};

/// The table's name as statements of the store's data path spell it.
pub fn table(pipeline: Pipeline, dialect: Dialect) -> String {
    match dialect {
        Dialect::Postgres => format!("ethereum.{}", pipeline.name()),
        Dialect::Sqlite => format!("main.{}", pipeline.name()),
    }
}

fn column_type(column: &Column, dialect: Dialect) -> &'static str {
    match (dialect, column.kind) {
        // Byte order (migration 12): hex sorts as it would under any locale,
        // without the locale's slow comparison; token names sort by byte.
        (Dialect::Postgres, ColumnType::Text) => "text COLLATE \"C\"",
        (Dialect::Postgres, ColumnType::Uint) => "numeric(78,0)",
        (Dialect::Postgres, ColumnType::Int) => "bigint",
        (Dialect::Postgres, ColumnType::Timestamp) => "timestamptz",
        (Dialect::Postgres, ColumnType::Bool) => "boolean",
        (Dialect::Sqlite, ColumnType::Text | ColumnType::Uint | ColumnType::Timestamp) => "TEXT",
        (Dialect::Sqlite, ColumnType::Int | ColumnType::Bool) => "INTEGER",
    }
}

/// `CREATE TABLE` with the key as primary key, then the dataset's indexes.
/// In PostgreSQL a day-replacing dataset is a partitioned table instead
/// ([`create_partitioned`]).
pub fn create(pipeline: Pipeline, dialect: Dialect) -> Vec<String> {
    if dialect == Dialect::Postgres && is_partitioned(pipeline) {
        return create_partitioned(pipeline, &table(pipeline, dialect));
    }
    let name = pipeline.name();
    // SQLite names an index's schema on the index, not on its table.
    let target = match dialect {
        Dialect::Postgres => table(pipeline, dialect),
        Dialect::Sqlite => name.to_string(),
    };
    let mut columns = column_lines(pipeline, dialect);
    columns.push(format!(
        "    CONSTRAINT {name}_pkey PRIMARY KEY ({})",
        pipeline.key().join(", ")
    ));
    let mut statements = vec![format!(
        "CREATE TABLE {target} (\n{}\n)",
        columns.join(",\n")
    )];
    statements.extend(index_statements(pipeline, name, &target));
    statements
}

/// Whether the dataset's PostgreSQL table is partitioned by day.
pub fn is_partitioned(pipeline: Pipeline) -> bool {
    pipeline.load_mode() == LoadMode::ReplaceDay
}

/// The partitioned parent `target` (schema-qualified): the columns, no key
/// (PostgreSQL cannot enforce one that leaves out the partition column; each
/// day's partition carries it, see `postgres/partitions.rs`), the dataset's
/// indexes as partitioned indexes, which an attached day's own indexes of
/// the same definition join, and the default partition.
pub fn create_partitioned(pipeline: Pipeline, target: &str) -> Vec<String> {
    let name = target.rsplit('.').next().unwrap_or(target);
    let mut statements = vec![format!(
        "CREATE TABLE {target} (\n{}\n) PARTITION BY RANGE ({})",
        column_lines(pipeline, Dialect::Postgres).join(",\n"),
        pipeline.day_column()
    )];
    statements.extend(index_statements(pipeline, name, target));
    statements.push(format!(
        "CREATE TABLE {} PARTITION OF {target} DEFAULT",
        default_partition(target)
    ));
    statements
}

/// The partition that holds rows of days without a partition of their own:
/// empty while ethpipe loads every day, it takes rows written into the
/// table by other means (a day's swap moves them out).
pub fn default_partition(parent: &str) -> String {
    format!("{parent}_default")
}

/// A PostgreSQL table for one day's rows before it becomes a partition: the
/// columns and a CHECK constraint matching the partition bounds, so that
/// `ATTACH PARTITION` needs no validation scan. No key and no index yet:
/// they are built after the rows are in.
pub fn create_day_table(pipeline: Pipeline, target: &str, day: Day) -> String {
    let name = target.rsplit('.').next().unwrap_or(target);
    let mut columns = column_lines(pipeline, Dialect::Postgres);
    let column = pipeline.day_column();
    let (start, end) = day_bounds(day);
    columns.push(format!(
        "    CONSTRAINT {name}_bounds CHECK ({column} >= {start} AND {column} < {end})"
    ));
    format!("CREATE TABLE {target} (\n{}\n)", columns.join(",\n"))
}

/// A day's bounds as timestamptz literals, for partition bounds and checks.
pub fn day_bounds(day: Day) -> (String, String) {
    let literal = |d: Day| format!("'{d} 00:00:00+00'");
    (literal(day), literal(day.succ()))
}

/// The statements that build a day table's key index and the dataset's
/// indexes (`<name>_pkey`, `<name>_<suffix>`), once its rows are in. Each
/// takes only a SHARE lock, so several can run at once on separate sessions;
/// [`day_table_key`] then makes the key index the primary key.
pub fn day_table_indexes(pipeline: Pipeline, target: &str) -> Vec<String> {
    let name = target.rsplit('.').next().unwrap_or(target);
    let mut statements = vec![format!(
        "CREATE UNIQUE INDEX {name}_pkey ON {target} ({})",
        pipeline.key().join(", ")
    )];
    statements.extend(index_statements(pipeline, name, target));
    statements
}

/// Turns the unique index built by [`day_table_indexes`] into the day
/// table's primary key (no scan: the key columns are already NOT NULL).
pub fn day_table_key(target: &str) -> String {
    let name = target.rsplit('.').next().unwrap_or(target);
    format!("ALTER TABLE {target} ADD CONSTRAINT {name}_pkey PRIMARY KEY USING INDEX {name}_pkey")
}

fn column_lines(pipeline: Pipeline, dialect: Dialect) -> Vec<String> {
    pipeline
        .columns()
        .iter()
        .map(|c| {
            let null = if c.nullable { "" } else { " NOT NULL" };
            format!("    {} {}{null}", c.name, column_type(c, dialect))
        })
        .collect()
}

fn index_statements(pipeline: Pipeline, name: &str, target: &str) -> Vec<String> {
    pipeline
        .indexes()
        .iter()
        .map(|index| {
            format!(
                "CREATE INDEX {name}_{} ON {target} ({})",
                index.suffix,
                index.columns.join(", ")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ethpipe_core::datasets::ERC1155_TRANSFERS;

    #[test]
    fn a_dataset_becomes_a_table_with_its_key_and_indexes() {
        let ddl = create(ERC1155_TRANSFERS, Dialect::Postgres);
        assert!(ddl[0].starts_with("CREATE TABLE ethereum.erc1155_transfers ("));
        assert!(ddl[0].contains("token_id numeric(78,0) NOT NULL"));
        assert!(ddl[0].ends_with(") PARTITION BY RANGE (block_timestamp)"));
        assert!(ddl[1].starts_with("CREATE INDEX erc1155_transfers_block_timestamp_idx"));
        let sqlite = create(ERC1155_TRANSFERS, Dialect::Sqlite);
        assert!(sqlite[0].starts_with("CREATE TABLE erc1155_transfers ("));
        assert!(sqlite[0].contains("token_id TEXT NOT NULL"));
        assert!(sqlite[0].contains("PRIMARY KEY (transaction_hash, log_index, batch_index)"));
    }

    #[test]
    fn a_day_table_is_bounded_to_its_day_and_gets_its_key_after_the_rows() {
        let day: Day = "2024-03-01".parse().unwrap();
        let table = "ethereum._stage_erc1155_transfers_20240301_7";
        let create = create_day_table(ERC1155_TRANSFERS, table, day);
        assert!(create.contains(
            "CONSTRAINT _stage_erc1155_transfers_20240301_7_bounds CHECK (block_timestamp >= '2024-03-01 00:00:00+00' AND block_timestamp < '2024-03-02 00:00:00+00')"
        ));
        assert!(!create.contains("PRIMARY KEY"));
        let indexes = day_table_indexes(ERC1155_TRANSFERS, table);
        assert_eq!(
            indexes[0],
            "CREATE UNIQUE INDEX _stage_erc1155_transfers_20240301_7_pkey ON ethereum._stage_erc1155_transfers_20240301_7 (transaction_hash, log_index, batch_index)"
        );
        assert_eq!(
            day_table_key(table),
            "ALTER TABLE ethereum._stage_erc1155_transfers_20240301_7 ADD CONSTRAINT _stage_erc1155_transfers_20240301_7_pkey PRIMARY KEY USING INDEX _stage_erc1155_transfers_20240301_7_pkey"
        );
    }
}
