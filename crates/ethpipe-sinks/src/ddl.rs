//! A dataset's table, written from its description for either store:
//! PostgreSQL keeps it in schema `ethereum` with exact `numeric(78,0)` and
//! `timestamptz`; SQLite (no schemas) keeps uint256 values as decimal TEXT so
//! nothing is rounded and timestamps as fixed-width ISO-8601 TEXT so they
//! sort and compare as text.

use ethpipe_core::dataset::{Column, ColumnType, Dialect};
use ethpipe_core::Pipeline;

/// The table's name as statements of the store's data path spell it.
pub fn table(pipeline: Pipeline, dialect: Dialect) -> String {
    match dialect {
        Dialect::Postgres => format!("ethereum.{}", pipeline.name()),
        Dialect::Sqlite => format!("main.{}", pipeline.name()),
    }
}

fn column_type(column: &Column, dialect: Dialect) -> &'static str {
    match (dialect, column.kind) {
        (Dialect::Postgres, ColumnType::Text) => "text",
        (Dialect::Postgres, ColumnType::Uint) => "numeric(78,0)",
        (Dialect::Postgres, ColumnType::Int) => "bigint",
        (Dialect::Postgres, ColumnType::Timestamp) => "timestamptz",
        (Dialect::Postgres, ColumnType::Bool) => "boolean",
        (Dialect::Sqlite, ColumnType::Text | ColumnType::Uint | ColumnType::Timestamp) => "TEXT",
        (Dialect::Sqlite, ColumnType::Int | ColumnType::Bool) => "INTEGER",
    }
}

/// `CREATE TABLE` with the key as primary key, then the dataset's indexes.
pub fn create(pipeline: Pipeline, dialect: Dialect) -> Vec<String> {
    let name = pipeline.name();
    // SQLite names an index's schema on the index, not on its table.
    let target = match dialect {
        Dialect::Postgres => table(pipeline, dialect),
        Dialect::Sqlite => name.to_string(),
    };
    let mut columns: Vec<String> = pipeline
        .columns()
        .iter()
        .map(|c| {
            let null = if c.nullable { "" } else { " NOT NULL" };
            format!("    {} {}{null}", c.name, column_type(c, dialect))
        })
        .collect();
    columns.push(format!(
        "    CONSTRAINT {name}_pkey PRIMARY KEY ({})",
        pipeline.key().join(", ")
    ));
    let mut statements = vec![format!(
        "CREATE TABLE {target} (\n{}\n)",
        columns.join(",\n")
    )];
    statements.extend(pipeline.indexes().iter().map(|index| {
        format!(
            "CREATE INDEX {name}_{} ON {target} ({})",
            index.suffix,
            index.columns.join(", ")
        )
    }));
    statements
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
        assert!(ddl[0].contains("PRIMARY KEY (transaction_hash, log_index, batch_index)"));
        assert!(ddl[1].starts_with("CREATE INDEX erc1155_transfers_block_timestamp_idx"));
        let sqlite = create(ERC1155_TRANSFERS, Dialect::Sqlite);
        assert!(sqlite[0].starts_with("CREATE TABLE erc1155_transfers ("));
        assert!(sqlite[0].contains("token_id TEXT NOT NULL"));
    }
}
