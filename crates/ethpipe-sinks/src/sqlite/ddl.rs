//! A dataset's SQLite table, written from its description: uint256 values as
//! decimal TEXT so nothing is rounded, timestamps as fixed-width ISO-8601
//! TEXT so they sort and compare as text.

use ethpipe_core::dataset::{Column, ColumnType};
use ethpipe_core::Pipeline;

/// SQLite has no schemas: a dataset's table is its name.
pub fn table(pipeline: Pipeline) -> String {
    format!("main.{}", pipeline.name())
}

fn column_type(column: &Column) -> &'static str {
    match column.kind {
        ColumnType::Text | ColumnType::Uint | ColumnType::Timestamp => "TEXT",
        ColumnType::Int | ColumnType::Bool => "INTEGER",
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
    columns.push(format!("    PRIMARY KEY ({})", pipeline.key().join(", ")));
    let mut statements = vec![format!("CREATE TABLE {name} (\n{}\n)", columns.join(",\n"))];
    statements.extend(pipeline.indexes().iter().map(|index| {
        format!(
            "CREATE INDEX {name}_{} ON {name} ({})",
            index.suffix,
            index.columns.join(", ")
        )
    }));
    statements
}
