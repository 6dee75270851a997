//! A pipeline whose first run loads its whole table (tokens, see
//! `Dataset::full_load_first`): the ledger records that load as one run
//! without a day, so its summary would show no days and no rows. Once the
//! full load committed, the summary counts its rows and the days its rows
//! cover (read from the table through the store), besides the days loaded
//! one at a time afterwards.

use ethpipe_core::{Day, Pipeline};
use ethpipe_sinks::ledger::DayLoaded;

use crate::queries::ledger::{self, PipelineSummary, Run, RunFilter};
use crate::store::{tokens, QueryError, Reader};

/// Runs read per page while looking for the full load (the oldest runs).
const PAGE: u32 = 500;

/// Folds the committed full load of `pipeline` into `summary`; leaves it
/// as it is for any other pipeline, or before the full load committed.
pub(super) async fn include_full_load(
    reader: &Reader,
    pipeline: Pipeline,
    summary: &mut PipelineSummary,
) -> Result<(), QueryError> {
    if summary.full_load_done != Some(true) {
        return Ok(());
    }
    let Some(run) = full_load_run(reader, pipeline).await? else {
        return Ok(());
    };
    let Some((first, last)) = tokens::day_range(reader.store(), pipeline).await? else {
        return Ok(());
    };
    let (Ok(first), Ok(last)) = (first.parse::<Day>(), last.parse::<Day>()) else {
        return Ok(());
    };
    let daily = reader.ledger().days_loaded(pipeline).await?;
    let full_load = FullLoad {
        rows: run.rows_written.unwrap_or(0),
        first,
        last,
    };
    fold(summary, &full_load, &daily);
    Ok(())
}

/// The newest successful run without a day (a full load), if any.
async fn full_load_run(reader: &Reader, pipeline: Pipeline) -> Result<Option<Run>, QueryError> {
    let mut before = None;
    loop {
        let filter = RunFilter {
            pipeline: Some(pipeline),
            status: Some("success"),
            before,
            limit: PAGE,
            ..RunFilter::default()
        };
        let runs = ledger::runs(reader, &filter).await?;
        if let Some(run) = runs.iter().find(|run| run.day.is_none()) {
            return Ok(Some(run.clone()));
        }
        match runs.last() {
            Some(oldest) if runs.len() == PAGE as usize => before = Some(oldest.id),
            _ => return Ok(None),
        }
    }
}

/// A committed full load: its rows and the first and last day they cover.
struct FullLoad {
    rows: i64,
    first: Day,
    last: Day,
}

/// Days a full load covers count once however many daily runs re-loaded
/// them; rows of a daily run inside the full load's range were upserts of
/// rows it already counted, so only daily runs outside it add rows.
fn fold(summary: &mut PipelineSummary, full_load: &FullLoad, daily: &[DayLoaded]) {
    let inside = |day: Day| full_load.first <= day && day <= full_load.last;
    let outside: Vec<(Day, i64)> = daily
        .iter()
        .filter_map(|loaded| loaded.day.parse::<Day>().ok().map(|d| (d, loaded.rows)))
        .filter(|(day, _)| !inside(*day))
        .collect();
    let first = outside
        .iter()
        .map(|(day, _)| *day)
        .fold(full_load.first, Day::min);
    let last = outside
        .iter()
        .map(|(day, _)| *day)
        .fold(full_load.last, Day::max);
    let covered = span(full_load.first, full_load.last) + outside.len() as i64;
    summary.days_loaded = covered;
    summary.first_day = Some(first.to_string());
    summary.last_day = Some(last.to_string());
    summary.gap_days = (span(first, last) - covered).max(0);
    summary.rows_loaded = full_load.rows + outside.iter().map(|(_, rows)| rows).sum::<i64>();
}

/// Days from `first` to `last`, both included.
fn span(first: Day, last: Day) -> i64 {
    (last.naive() - first.naive()).num_days() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> PipelineSummary {
        PipelineSummary {
            pipeline: "tokens".into(),
            days_loaded: 0,
            first_day: None,
            last_day: None,
            gap_days: 0,
            rows_loaded: 0,
            running: 0,
            last_run: None,
            full_load_done: Some(true),
            tokens: None,
            triggers: Vec::new(),
        }
    }

    fn day(text: &str) -> Day {
        text.parse().unwrap()
    }

    fn loaded(day: &str, rows: i64) -> DayLoaded {
        DayLoaded {
            day: day.into(),
            rows,
            token_filter: None,
        }
    }

    #[test]
    fn a_full_load_alone_covers_its_creation_days() {
        let mut s = summary();
        let full = FullLoad {
            rows: 1_234,
            first: day("2017-01-01"),
            last: day("2017-01-31"),
        };
        fold(&mut s, &full, &[]);
        assert_eq!(s.days_loaded, 31);
        assert_eq!(s.rows_loaded, 1_234);
        assert_eq!(s.first_day.as_deref(), Some("2017-01-01"));
        assert_eq!(s.last_day.as_deref(), Some("2017-01-31"));
        assert_eq!(s.gap_days, 0);
    }

    #[test]
    fn daily_runs_inside_the_range_add_nothing_and_after_it_add_days_rows_and_gaps() {
        let mut s = summary();
        let full = FullLoad {
            rows: 100,
            first: day("2024-01-01"),
            last: day("2024-01-10"),
        };
        let daily = [
            loaded("2024-01-05", 7),
            loaded("2024-01-12", 3),
            loaded("2024-01-13", 4),
        ];
        fold(&mut s, &full, &daily);
        assert_eq!(s.days_loaded, 12);
        assert_eq!(s.rows_loaded, 107);
        assert_eq!(s.last_day.as_deref(), Some("2024-01-13"));
        assert_eq!(s.gap_days, 1, "2024-01-11 is missing");
    }
}
