//! The SQL ethpipe sends to BigQuery. The day is always a query parameter
//! (`@day`, type DATE), and the filter is a range on `block_timestamp`, the
//! tables' partitioning column, so BigQuery scans one partition. A token
//! filter is a parameter too (`@tokens`, ARRAY<STRING>), never SQL text.

use ethpipe_core::dataset::{BigQueryExtraction, LoadMode};
use ethpipe_core::{Day, Pipeline, Scope, Slice, SourceError, TokenFilter};
use gcp_bigquery_client::model::query_parameter::QueryParameter;
use gcp_bigquery_client::model::query_parameter_type::QueryParameterType;
use gcp_bigquery_client::model::query_parameter_value::QueryParameterValue;

/// The columns of `crypto_ethereum.logs` a log dataset is decoded from, in
/// the order [`super::page::log_from_cells`] reads them.
pub const LOG_COLUMNS: [&str; 8] = [
    "address",
    "topics",
    "data",
    "transaction_hash",
    "log_index",
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

    fn table(&self, table: &str) -> String {
        format!("`{}.{table}`", self.0)
    }
}

/// The columns a dataset's query selects, in the order its rows are built from.
pub fn columns(pipeline: Pipeline) -> &'static [&'static str] {
    match pipeline.bigquery() {
        BigQueryExtraction::Table { columns, .. } => columns,
        BigQueryExtraction::Logs { .. } => &LOG_COLUMNS,
    }
}

/// The table a dataset is read from, and its extra conditions and
/// parameters: the log topics, and the token filter on the column that
/// names the token (a table dataset's filter column, a log's `address`).
fn source_table(
    dataset: &Dataset,
    pipeline: Pipeline,
    tokens: Option<&TokenFilter>,
) -> (String, String, Vec<QueryParameter>) {
    let (table, mut conditions, mut parameters, token_column) = match pipeline.bigquery() {
        BigQueryExtraction::Table { table, .. } => (
            dataset.table(table),
            String::new(),
            Vec::new(),
            pipeline.filter_column(),
        ),
        BigQueryExtraction::Logs { topics } => (
            dataset.table("logs"),
            " AND topics[SAFE_OFFSET(0)] IN UNNEST(@topics)".to_string(),
            vec![string_array_parameter("topics", topics.iter().copied())],
            "address",
        ),
    };
    if let Some(tokens) = tokens {
        conditions.push_str(&format!(" AND {token_column} IN UNNEST(@tokens)"));
        parameters.push(string_array_parameter(
            "tokens",
            tokens.addresses().iter().map(String::as_str),
        ));
    }
    (table, conditions, parameters)
}

/// A query's text plus its parameters.
pub struct Query {
    pub sql: String,
    pub parameters: Vec<QueryParameter>,
}

/// The rows of a pipeline for a day, or (tokens) the whole table.
pub fn extract(dataset: &Dataset, slice: &Slice) -> Query {
    let (pipeline, scope) = (slice.pipeline, slice.scope);
    let (table, filter, mut parameters) = source_table(dataset, pipeline, slice.filter.as_ref());
    let select = format!("SELECT {} FROM {table}", columns(pipeline).join(", "));
    match scope {
        Scope::Day(day) => {
            parameters.insert(0, day_parameter(day));
            Query {
                sql: format!("{select} WHERE {DAY_FILTER}{filter}"),
                parameters,
            }
        }
        Scope::Full if filter.is_empty() => Query {
            sql: select,
            parameters,
        },
        Scope::Full => Query {
            sql: format!("{select} WHERE{}", filter.trim_start_matches(" AND")),
            parameters,
        },
    }
}

/// A partition-pruned `COUNT(*)` of a table dataset's day (for `verify`).
/// A merged dataset keeps one row per key (BigQuery's `tokens` has exact
/// duplicate rows), so its count is of distinct keys.
pub fn count(
    dataset: &Dataset,
    pipeline: Pipeline,
    day: Day,
    tokens: Option<&TokenFilter>,
) -> Query {
    let (table, filter, mut parameters) = source_table(dataset, pipeline, tokens);
    parameters.insert(0, day_parameter(day));
    let rows = format!("{table} WHERE {DAY_FILTER}{filter}");
    let sql = match pipeline.load_mode() {
        LoadMode::Merge => format!(
            "SELECT COUNT(*) AS row_count FROM (SELECT DISTINCT {} FROM {rows})",
            pipeline.key().join(", ")
        ),
        LoadMode::ReplaceDay => format!("SELECT COUNT(*) AS row_count FROM {rows}"),
    };
    Query { sql, parameters }
}

/// The name of the column [`published`] answers with.
pub const FIRST_AFTER: &str = "first_after";

/// The publication gate: the earliest row after `@day`'s end, looked for in
/// the next day's partition only (one partition, one column: cheap), of a
/// table that has rows every day — `logs` for a log dataset, otherwise
/// `token_transfers` (the `tokens` table may have no row on a given day).
/// A NULL answer means the dataset has not published past the day yet.
pub fn published(dataset: &Dataset, pipeline: Pipeline, day: Day) -> Query {
    let table = match pipeline.bigquery() {
        BigQueryExtraction::Table { .. } => dataset.table("token_transfers"),
        BigQueryExtraction::Logs { .. } => dataset.table("logs"),
    };
    Query {
        sql: format!(
            "SELECT MIN(block_timestamp) AS {FIRST_AFTER} FROM {table} \
             WHERE block_timestamp >= TIMESTAMP_ADD(TIMESTAMP(@day), INTERVAL 1 DAY) \
             AND block_timestamp < TIMESTAMP_ADD(TIMESTAMP(@day), INTERVAL 2 DAY)"
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

fn string_array_parameter<'a>(name: &str, values: impl Iterator<Item = &'a str>) -> QueryParameter {
    QueryParameter {
        name: Some(name.to_string()),
        parameter_type: Some(QueryParameterType {
            array_type: Some(Box::new(QueryParameterType {
                array_type: None,
                struct_types: None,
                r#type: "STRING".to_string(),
            })),
            struct_types: None,
            r#type: "ARRAY".to_string(),
        }),
        parameter_value: Some(QueryParameterValue {
            array_values: Some(
                values
                    .map(|value| QueryParameterValue {
                        array_values: None,
                        struct_values: None,
                        value: Some(value.to_string()),
                    })
                    .collect(),
            ),
            struct_values: None,
            value: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ethpipe_core::datasets::{ERC1155_TRANSFERS, TOKENS, TOKEN_TRANSFERS};

    #[test]
    fn day_queries_use_a_parameter_and_the_partition_column() {
        let dataset = Dataset::parse("bigquery-public-data.crypto_ethereum").unwrap();
        let day: Day = "2024-03-01".parse().unwrap();
        let query = extract(&dataset, &Slice::all(TOKEN_TRANSFERS, Scope::Day(day)));
        assert!(!query.sql.contains("2024-03-01"));
        assert!(query.sql.contains("block_timestamp >= TIMESTAMP(@day)"));
        assert!(query
            .sql
            .contains("FROM `bigquery-public-data.crypto_ethereum.token_transfers`"));
        assert_eq!(query.parameters.len(), 1);
        let full = extract(&dataset, &Slice::all(TOKENS, Scope::Full));
        assert!(full.parameters.is_empty() && !full.sql.contains("WHERE"));
    }

    #[test]
    fn log_datasets_filter_the_logs_table_by_a_topics_parameter() {
        let dataset = Dataset::parse("bigquery-public-data.crypto_ethereum").unwrap();
        let day: Day = "2024-03-01".parse().unwrap();
        let query = extract(&dataset, &Slice::all(ERC1155_TRANSFERS, Scope::Day(day)));
        assert!(query
            .sql
            .contains("FROM `bigquery-public-data.crypto_ethereum.logs`"));
        assert!(query
            .sql
            .ends_with("AND topics[SAFE_OFFSET(0)] IN UNNEST(@topics)"));
        let names: Vec<_> = query.parameters.iter().map(|p| p.name.clone()).collect();
        assert_eq!(names, [Some("day".into()), Some("topics".into())]);
        let topics = query.parameters[1].parameter_value.as_ref().unwrap();
        assert_eq!(topics.array_values.as_ref().map(Vec::len), Some(2));
    }

    #[test]
    fn a_token_filter_is_an_array_parameter_on_the_token_column() {
        let dataset = Dataset::parse("bigquery-public-data.crypto_ethereum").unwrap();
        let day: Day = "2024-03-01".parse().unwrap();
        let a = "0x1111111111111111111111111111111111111111";
        let b = "0x2222222222222222222222222222222222222222";
        let filter = TokenFilter::parse_list(&format!("{b},{a}")).unwrap();
        let cases = [
            (TOKEN_TRANSFERS, "token_address IN UNNEST(@tokens)"),
            (TOKENS, "address IN UNNEST(@tokens)"),
            (ERC1155_TRANSFERS, "AND address IN UNNEST(@tokens)"),
        ];
        for (pipeline, condition) in cases {
            let slice = Slice {
                pipeline,
                scope: Scope::Day(day),
                filter: Some(filter.clone()),
            };
            for query in [
                extract(&dataset, &slice),
                count(&dataset, pipeline, day, Some(&filter)),
            ] {
                assert!(query.sql.contains(condition), "{}", query.sql);
                assert!(!query.sql.contains(a), "{}", query.sql);
                let tokens = query
                    .parameters
                    .iter()
                    .find(|p| p.name.as_deref() == Some("tokens"))
                    .expect("a tokens parameter");
                let values: Vec<_> = tokens
                    .parameter_value
                    .as_ref()
                    .and_then(|v| v.array_values.as_ref())
                    .expect("array values")
                    .iter()
                    .map(|v| v.value.clone().unwrap_or_default())
                    .collect();
                assert_eq!(values, [a, b]);
            }
        }
        let full = extract(
            &dataset,
            &Slice {
                pipeline: TOKENS,
                scope: Scope::Full,
                filter: Some(filter),
            },
        );
        assert!(
            full.sql.ends_with("WHERE address IN UNNEST(@tokens)"),
            "{}",
            full.sql
        );
    }

    #[test]
    fn the_publication_gate_reads_one_partition_after_the_day() {
        let dataset = Dataset::parse("bigquery-public-data.crypto_ethereum").unwrap();
        let day: Day = "2024-03-01".parse().unwrap();
        let query = published(&dataset, TOKENS, day);
        assert!(!query.sql.contains("2024-03-01"));
        assert!(query
            .sql
            .contains("FROM `bigquery-public-data.crypto_ethereum.token_transfers`"));
        assert!(query.sql.contains("INTERVAL 1 DAY") && query.sql.contains("INTERVAL 2 DAY"));
        assert!(published(&dataset, ERC1155_TRANSFERS, day)
            .sql
            .contains(".logs`"));
    }

    #[test]
    fn dataset_names_cannot_inject_sql() {
        for bad in ["crypto_ethereum", "a.b`; DROP TABLE x; --", "a..b", "a.b c"] {
            assert!(Dataset::parse(bad).is_err(), "{bad}");
        }
        assert!(Dataset::parse("my-proj.my_ds").is_ok());
    }
}
