//! The one place the server learns which pipelines exist. Nothing else in the
//! server names a pipeline: pages, filters, the OpenAPI enum and input
//! messages all take the list from [`pipelines`].

use std::borrow::Cow;

use ethpipe_core::dataset::Derived;
use ethpipe_core::datasets::TOKEN_TRANSFERS;
use ethpipe_core::Pipeline;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;

use crate::error::Invalid;

/// Every pipeline, in the registry's order (tables and menus).
pub fn pipelines() -> Vec<Pipeline> {
    Pipeline::ALL.to_vec()
}

/// The pipeline whose days the day overview ranks: `token_daily_stats` is
/// derived from its loads.
pub fn day_overview_pipeline() -> Pipeline {
    Pipeline::ALL
        .iter()
        .copied()
        .find(|p| p.derived().contains(&Derived::TokenDailyStats))
        .unwrap_or(TOKEN_TRANSFERS)
}

/// A pipeline name from input.
pub fn parse_pipeline(text: &str) -> Result<Pipeline, Invalid> {
    text.parse().map_err(|_| {
        Invalid::new(format!(
            "unknown pipeline '{}': expected {}",
            Invalid::shown(text),
            choices()
        ))
    })
}

/// `a, b or c`.
fn choices() -> String {
    let names: Vec<&str> = pipelines().iter().map(|p| p.name()).collect();
    match names.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// A pipeline's name in the OpenAPI document: an enum of [`pipelines`].
pub struct PipelineName;

impl utoipa::PartialSchema for PipelineName {
    fn schema() -> RefOr<Schema> {
        let names: Vec<&str> = pipelines().iter().map(|p| p.name()).collect();
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(names))
            .into()
    }
}

impl utoipa::ToSchema for PipelineName {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Pipeline")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pipeline_parses_and_unknown_names_list_the_choices() {
        for pipeline in pipelines() {
            assert_eq!(parse_pipeline(pipeline.name()).unwrap(), pipeline);
        }
        let err = parse_pipeline("blocks").unwrap_err().to_string();
        assert!(
            err.starts_with("unknown pipeline 'blocks': expected "),
            "{err}"
        );
        for pipeline in pipelines() {
            assert!(err.contains(pipeline.name()), "{err}");
        }
        assert!(pipelines().contains(&day_overview_pipeline()));
    }
}
