//! The scope of one run: a UTC day, or the whole table; and the [`Slice`]
//! a run reads and replaces: a dataset, a scope and a token filter.

use std::fmt;

use crate::{Day, Pipeline, TokenFilter};

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

/// What one run reads from its source and replaces in its sink: a dataset's
/// rows within a scope, limited to a token filter (`None`: every token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice {
    pub pipeline: Pipeline,
    pub scope: Scope,
    pub filter: Option<TokenFilter>,
}

impl Slice {
    /// Every token's rows of `scope`.
    pub fn all(pipeline: Pipeline, scope: Scope) -> Slice {
        Slice {
            pipeline,
            scope,
            filter: None,
        }
    }
}

impl fmt::Display for Slice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.pipeline, self.scope)?;
        if let Some(filter) = &self.filter {
            write!(f, " ({filter})")?;
        }
        Ok(())
    }
}
