//! A UTC calendar day: parsing `YYYY-MM-DD` and the half-open timestamp range it covers.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Days, NaiveDate, Utc};

/// One UTC calendar day, `[00:00:00, next day 00:00:00)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(NaiveDate);

#[derive(Debug, thiserror::Error)]
#[error("invalid date '{input}': expected a calendar day as YYYY-MM-DD, e.g. 2024-03-01")]
pub struct DayParseError {
    pub input: String,
}

impl Day {
    pub fn from_naive(date: NaiveDate) -> Self {
        Day(date)
    }

    pub fn naive(self) -> NaiveDate {
        self.0
    }

    /// The UTC day that contains `instant`.
    pub fn containing(instant: DateTime<Utc>) -> Self {
        Day(instant.date_naive())
    }

    pub fn today_utc() -> Self {
        Self::containing(Utc::now())
    }

    pub fn start(self) -> DateTime<Utc> {
        self.0.and_time(chrono::NaiveTime::MIN).and_utc()
    }

    /// Exclusive end: the first instant of the next day.
    pub fn end(self) -> DateTime<Utc> {
        self.succ().start()
    }

    pub fn succ(self) -> Self {
        Day(self.0 + Days::new(1))
    }

    pub fn pred(self) -> Self {
        Day(self.0 - Days::new(1))
    }
}

impl FromStr for Day {
    type Err = DayParseError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = || DayParseError {
            input: input.to_string(),
        };
        // chrono accepts e.g. "2024-3-1"; insist on the canonical shape so a typo is caught.
        if input.len() != 10 || input.as_bytes()[4] != b'-' || input.as_bytes()[7] != b'-' {
            return Err(err());
        }
        NaiveDate::parse_from_str(input, "%Y-%m-%d")
            .map(Day)
            .map_err(|_| err())
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_canonical_days_only() {
        assert_eq!(
            "2024-02-29".parse::<Day>().unwrap().to_string(),
            "2024-02-29"
        );
        for bad in [
            "2023-02-29",
            "2024-3-1",
            "2024/03/01",
            "",
            "yesterday",
            "2024-03-01T00:00",
        ] {
            assert!(bad.parse::<Day>().is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn bounds_are_half_open_utc() {
        let day: Day = "2024-03-01".parse().unwrap();
        assert_eq!(day.start().to_rfc3339(), "2024-03-01T00:00:00+00:00");
        assert_eq!(day.end().to_rfc3339(), "2024-03-02T00:00:00+00:00");
        assert_eq!(Day::containing(day.end()), day.succ());
        assert_eq!(day.succ().pred(), day);
    }
}
