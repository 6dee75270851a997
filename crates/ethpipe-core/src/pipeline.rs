//! The scope of one run: a UTC day, or the whole table.

use std::fmt;

use crate::Day;

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
