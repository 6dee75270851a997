//! The pipelines ethpipe runs and the scope of one run.

use std::fmt;
use std::str::FromStr;

use crate::Day;

/// A dataset ethpipe loads; one table each in the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pipeline {
    TokenTransfers,
    Tokens,
}

impl Pipeline {
    pub const ALL: [Pipeline; 2] = [Pipeline::Tokens, Pipeline::TokenTransfers];

    pub fn name(self) -> &'static str {
        match self {
            Pipeline::TokenTransfers => "token_transfers",
            Pipeline::Tokens => "tokens",
        }
    }
}

impl fmt::Display for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown pipeline '{0}': expected one of token_transfers, tokens")]
pub struct UnknownPipeline(pub String);

impl FromStr for Pipeline {
    type Err = UnknownPipeline;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "token_transfers" => Ok(Pipeline::TokenTransfers),
            "tokens" => Ok(Pipeline::Tokens),
            other => Err(UnknownPipeline(other.to_string())),
        }
    }
}

/// What one run covers: a single UTC day, or (tokens only) the whole table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Day(Day),
    Full,
}

impl Scope {
    pub fn day(self) -> Option<Day> {
        match self {
            Scope::Day(day) => Some(day),
            Scope::Full => None,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Day(day) => write!(f, "{day}"),
            Scope::Full => f.write_str("full load"),
        }
    }
}
