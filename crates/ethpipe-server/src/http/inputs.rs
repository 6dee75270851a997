//! What the handlers take: query strings and JSON bodies as they arrive
//! (text, so a bad value gets a message naming it rather than serde's), each
//! with the schema the OpenAPI document shows and a method that validates it
//! into the service's typed input. The API and the pages share them.

#![allow(dead_code)] // Schema-only types below.

use ethpipe_core::{Day, Pipeline};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::params::{self, MAX_LOG_LINES, MAX_PAGE};
use crate::error::Invalid;
use crate::service::{parse_pipeline, BackfillOrder, PipelineName, RunsRequest};
use crate::store::{Cursor, Direction};

/// A run state, as a filter names it.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Success,
    Failed,
}

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// only this pipeline
    #[param(value_type = Option<PipelineName>)]
    pub pipeline: Option<String>,
    /// only runs in this state
    #[param(value_type = Option<RunStatus>)]
    pub status: Option<String>,
    /// only runs started by this trigger (manual, dashboard, backfill, a trigger's name)
    #[param(min_length = 1, max_length = 200)]
    pub trigger: Option<String>,
    /// next_before of the previous page
    #[param(value_type = Option<i64>, minimum = 1)]
    pub before: Option<String>,
    /// rows per page, 1 to 100
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<String>,
}

impl RunsQuery {
    pub fn request(&self) -> Result<RunsRequest, Invalid> {
        Ok(RunsRequest {
            pipeline: params::optional_pipeline(self.pipeline.as_deref())?,
            status: params::status(self.status.as_deref())?,
            trigger: params::trigger_filter(self.trigger.as_deref())?,
            before: params::optional_id("before", self.before.as_deref())?,
            limit: params::limit(self.limit.as_deref(), 20, MAX_PAGE)?,
        })
    }

    /// Empty filter values from the page's form mean "any".
    pub fn without_blanks(mut self) -> RunsQuery {
        for value in [&mut self.pipeline, &mut self.status] {
            if value.as_deref() == Some("") {
                *value = None;
            }
        }
        self
    }
}

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// next_after of the previous call (0 = from the start)
    #[param(value_type = Option<i64>, minimum = 0)]
    pub after: Option<String>,
    /// lines per call, 1 to 1000
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000, default = 200)]
    pub limit: Option<String>,
}

impl LogsQuery {
    /// (after, limit).
    pub fn window(&self) -> Result<(i64, u32), Invalid> {
        let after = match self.after.as_deref() {
            None | Some("0") => 0,
            Some(text) => params::id("after", text)?,
        };
        Ok((
            after,
            params::limit(self.limit.as_deref(), 200, MAX_LOG_LINES)?,
        ))
    }
}

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// 1 to 100 characters: a symbol, a name, or an address or its beginning
    #[param(required = true, min_length = 1, max_length = 100)]
    pub q: Option<String>,
    /// matches, 1 to 100
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<String>,
}

impl SearchQuery {
    /// The search text and how many matches, `default` when not given.
    pub fn search(&self, default: u32) -> Result<(String, u32), Invalid> {
        Ok((
            params::search_text(self.q.as_deref())?,
            params::limit(self.limit.as_deref(), default, MAX_PAGE)?,
        ))
    }
}

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DailyQuery {
    /// first day (inclusive)
    #[param(value_type = Option<String>, format = Date)]
    pub from: Option<String>,
    /// last day (inclusive)
    #[param(value_type = Option<String>, format = Date)]
    pub to: Option<String>,
    /// days, 1 to 3660
    #[param(value_type = Option<u32>, minimum = 1, maximum = 3660, default = 365)]
    pub limit: Option<String>,
}

impl DailyQuery {
    /// (from, to, limit), the range ordered and bounded.
    pub fn range(&self) -> Result<(Option<Day>, Option<Day>, u32), Invalid> {
        let from = params::optional_day("from", self.from.as_deref())?;
        let to = params::optional_day("to", self.to.as_deref())?;
        if let (Some(from), Some(to)) = (from, to) {
            params::day_range(from, to)?;
        }
        let limit = params::limit(self.limit.as_deref(), 365, params::MAX_DAYS as u32)?;
        Ok((from, to, limit))
    }
}

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TopQuery {
    /// the day (default: the token's latest day with statistics)
    #[param(value_type = Option<String>, format = Date)]
    pub day: Option<String>,
    /// addresses per side, 1 to 100
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100, default = 10)]
    pub limit: Option<String>,
}

impl TopQuery {
    pub fn day_and_limit(&self) -> Result<(Option<Day>, u32), Invalid> {
        Ok((
            params::optional_day("day", self.day.as_deref())?,
            params::limit(self.limit.as_deref(), 10, MAX_PAGE)?,
        ))
    }
}

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TransfersQuery {
    /// in, out or both
    #[param(value_type = Option<Direction>, default = "both")]
    pub direction: Option<String>,
    /// next_cursor of the previous page
    pub cursor: Option<String>,
    /// transfers per page, 1 to 100
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100, default = 25)]
    pub limit: Option<String>,
}

impl TransfersQuery {
    /// A blank direction (from the page's links) means both.
    pub fn without_blanks(mut self) -> TransfersQuery {
        if self.direction.as_deref() == Some("") {
            self.direction = None;
        }
        self
    }

    /// (direction, cursor, limit).
    pub fn page(&self) -> Result<(Direction, Option<Cursor>, u32), Invalid> {
        Ok((
            Direction::parse(self.direction.as_deref())?,
            self.cursor.as_deref().map(Cursor::parse).transpose()?,
            params::limit(self.limit.as_deref(), 25, MAX_PAGE)?,
        ))
    }
}

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DayQuery {
    /// tokens, 1 to 100
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<String>,
}

impl DayQuery {
    pub fn limit(&self, default: u32) -> Result<u32, Invalid> {
        params::limit(self.limit.as_deref(), default, MAX_PAGE)
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActiveBody {
    pub active: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRunBody {
    #[schema(value_type = PipelineName)]
    pub pipeline: String,
    #[schema(format = Date, example = "2024-03-01")]
    pub day: String,
}

impl StartRunBody {
    pub fn order(&self) -> Result<(Pipeline, Day), Invalid> {
        Ok((
            parse_pipeline(&self.pipeline)?,
            params::day("day", &self.day)?,
        ))
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartBackfillBody {
    #[schema(value_type = PipelineName)]
    pub pipeline: String,
    #[schema(format = Date, example = "2024-03-01")]
    pub from: String,
    #[schema(format = Date, example = "2024-03-31")]
    pub to: String,
    /// days loaded at once, 1 to 16
    #[schema(minimum = 1, maximum = 16, default = 1)]
    pub parallel: Option<u32>,
    /// re-load days already loaded
    #[serde(default)]
    #[schema(default = false)]
    pub force: bool,
}

impl StartBackfillBody {
    pub fn order(&self) -> Result<BackfillOrder, Invalid> {
        let pipeline = parse_pipeline(&self.pipeline)?;
        let from = params::day("from", &self.from)?;
        let to = params::day("to", &self.to)?;
        params::day_range(from, to)?;
        Ok(BackfillOrder {
            pipeline,
            from,
            to,
            parallel: self.parallel.unwrap_or(1) as usize,
            force: self.force,
        })
    }
}
