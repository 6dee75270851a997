//! A dataset's PostgreSQL table, written from its description.

use ethpipe_core::dataset::{Column, ColumnType};
use ethpipe_core::Pipeline;

/// Every dataset lives in schema `ethereum`, under its own name.
pub fn table(pipeline: Pipeline) -> String {
    format!("ethereum.{}", pipeline.name())
}

fn column_type(column: &Column) -> &'static str {
    match column.kind {
        ColumnType::Text => "text",
        ColumnType::Uint => "numeric(78,0)",
        ColumnType::Int => "bigint",
        ColumnType::Timestamp => "timestamptz",
        ColumnType::Bool => "boolean",
    }
}

/// `CREATE TABLE` with the key as primary key, then the dataset's indexes.
pub fn create(pipeline: Pipeline) -> Vec<String> {
    let name = pipeline.name();
    let mut columns: Vec<String> = pipeline
        .columns()
        .iter()
        .map(|c| {
            let null = if c.nullable { "" } else { " NOT NULL" };
            format!("    {} {}{null}", c.name, column_type(c))
        })
        .collect();
    columns.push(format!(
        "    CONSTRAINT {name}_pkey PRIMARY KEY ({})",
        pipeline.key().join(", ")
    ));
    let mut statements = vec![format!(
        "CREATE TABLE {} (\n{}\n)",
        table(pipeline),
        columns.join(",\n")
    )];
    statements.extend(pipeline.indexes().iter().map(|index| {
        format!(
            "CREATE INDEX {name}_{} ON {} ({})",
            index.suffix,
            table(pipeline),
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
        let ddl = create(ERC1155_TRANSFERS);
        assert!(ddl[0].starts_with("CREATE TABLE ethereum.erc1155_transfers ("));
        assert!(ddl[0].contains("token_id numeric(78,0) NOT NULL"));
        assert!(ddl[0].contains("PRIMARY KEY (transaction_hash, log_index, batch_index)"));
        assert!(ddl[1].starts_with("CREATE INDEX erc1155_transfers_block_timestamp_idx"));
    }
}
