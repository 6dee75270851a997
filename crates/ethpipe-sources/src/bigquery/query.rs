//! The SQL ethpipe sends to BigQuery. The day is always a query parameter
//! (`@day`, type DATE), and the filter is a range on `block_timestamp`, the
//! tables' partitioning column, so BigQuery scans one partition.

use ethpipe_core::{Day, Pipeline, Scope, SourceError};
use gcp_bigquery_client::model::query_parameter::QueryParameter;
use gcp_bigquery_client::model::query_parameter_type::QueryParameterType;
use gcp_bigquery_client::model::query_parameter_value::QueryParameterValue;

/// The columns ethpipe reads, in the order the rows are built from.
pub const TRANSFER_COLUMNS: [&str; 9] = [
    "token_address",
    "from_address",
    "to_address",
    "value",
    "transaction_hash",
    "log_index",
    "block_timestamp",
    "block_number",
    "block_hash",
];

pub const TOKEN_COLUMNS: [&str; 8] = [
    "address",
    "symbol",
    "name",
    "decimals",
    "total_supply",
    "block_timestamp",
    "block_number",
    "block_hash",
];

const DAY_FILTER: &str = "block_timestamp >= TIMESTAMP(@day) \
     AND block_timestamp < TIMESTAMP_ADD(TIMESTAMP(@day), INTERVAL 1 DAY)";

/// A `project.dataset` reference, checked so it can be quoted as an identifier
/// (identifiers cannot be query parameters).
#[derive(Debug, Clone)]
pub struct Dataset(String);

impl Dataset {
    pub fn parse(text: &str) -> Result<Dataset, SourceError> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || "_-.:".contains(c);
        let parts: Vec<&str> = text.split('.').collect();
        if parts.len() < 2 || parts.iter().any(|p| p.is_empty()) || !text.chars().all(allowed) {
            return Err(SourceError::Config(format!(
                "invalid --bigquery-dataset '{text}': expected project.dataset, e.g. bigquery-public-data.crypto_ethereum"
            )));
        }
        Ok(Dataset(text.to_string()))
    }

    fn table(&self, pipeline: Pipeline) -> String {
        format!("`{}.{}`", self.0, pipeline.name())
    }
}

fn columns(pipeline: Pipeline) -> &'static [&'static str] {
    match pipeline {
        Pipeline::TokenTransfers => &TRANSFER_COLUMNS,
        Pipeline::Tokens => &TOKEN_COLUMNS,
    }
}

/// A query's text plus its parameters.
pub struct Query {
    pub sql: String,
    pub parameters: Vec<QueryParameter>,
}

/// The rows of a pipeline for a day, or (tokens) the whole table.
pub fn extract(dataset: &Dataset, pipeline: Pipeline, scope: Scope) -> Query {
    let select = format!(
        "SELECT {} FROM {}",
        columns(pipeline).join(", "),
        dataset.table(pipeline)
    );
    match scope {
        Scope::Day(day) => Query {
            sql: format!("{select} WHERE {DAY_FILTER}"),
            parameters: vec![day_parameter(day)],
        },
        Scope::Full => Query {
            sql: select,
            parameters: Vec::new(),
        },
    }
}

/// A partition-pruned `COUNT(*)` of a pipeline's day (for `verify`).
pub fn count(dataset: &Dataset, pipeline: Pipeline, day: Day) -> Query {
    Query {
        sql: format!(
            "SELECT COUNT(*) AS row_count FROM {} WHERE {DAY_FILTER}",
            dataset.table(pipeline)
        ),
        parameters: vec![day_parameter(day)],
    }
}

fn day_parameter(day: Day) -> QueryParameter {
    QueryParameter {
        name: Some("day".to_string()),
        parameter_type: Some(QueryParameterType {
            array_type: None,
            struct_types: None,
            r#type: "DATE".to_string(),
        }),
        parameter_value: Some(QueryParameterValue {
            array_values: None,
            struct_values: None,
            value: Some(day.to_string()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_queries_use_a_parameter_and_the_partition_column() {
        let dataset = Dataset::parse("bigquery-public-data.crypto_ethereum").unwrap();
        let day: Day = "2024-03-01".parse().unwrap();
        let query = extract(&dataset, Pipeline::TokenTransfers, Scope::Day(day));
        assert!(!query.sql.contains("2024-03-01"));
        assert!(query.sql.contains("block_timestamp >= TIMESTAMP(@day)"));
        assert!(query
            .sql
            .contains("FROM `bigquery-public-data.crypto_ethereum.token_transfers`"));
        assert_eq!(query.parameters.len(), 1);
        let full = extract(&dataset, Pipeline::Tokens, Scope::Full);
        assert!(full.parameters.is_empty() && !full.sql.contains("WHERE"));
    }

    #[test]
    fn dataset_names_cannot_inject_sql() {
        for bad in ["crypto_ethereum", "a.b`; DROP TABLE x; --", "a..b", "a.b c"] {
            assert!(Dataset::parse(bad).is_err(), "{bad}");
        }
        assert!(Dataset::parse("my-proj.my_ds").is_ok());
    }
}
