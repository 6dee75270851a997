//! Charts drawn on the server as SVG: no script, no chart library, readable
//! in any browser and in a screenshot.
//!
//! [`daily_chart`] draws a token's daily statistics in two panels sharing a
//! date axis: transfers per day (bars) and volume per day scaled by the
//! token's decimals (a line), each with "nice" ticks (1, 2, 5 × 10ⁿ), compact
//! numbers (12.5k, 3.1M) and its unit. Values are only ever drawn from the
//! exact decimal text, so the chart may round but the API never does.

use chrono::NaiveDate;
use maud::{html, Markup, PreEscaped};

use crate::store::DailyStat;

const WIDTH: f64 = 760.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 16.0;
const PANEL_HEIGHT: f64 = 150.0;
const PANEL_TOP: [f64; 2] = [34.0, 244.0];
const X_LABEL_GAP: f64 = 16.0;
const HEIGHT: f64 = 430.0;
/// At most this many date labels, so they never overlap.
const MAX_DATE_LABELS: usize = 6;

/// Ticks from 0 to a round top covering `max`: (step, top).
pub fn nice_ticks(max: f64) -> (f64, f64) {
    if !(max.is_finite() && max > 0.0) {
        return (1.0, 1.0);
    }
    let raw = max / 4.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let top = (max / step).ceil() * step;
    (step, top.max(step))
}

/// 1234 → "1.23k", 5_000_000 → "5M", 0.5 → "0.5", 0.000012 → "1.2e-5".
pub fn compact(value: f64) -> String {
    let abs = value.abs();
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if abs == 0.0 {
        return "0".into();
    }
    for (size, suffix) in [(1e15, "P"), (1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")] {
        if abs >= size {
            if abs >= size * 1000.0 && suffix == "P" {
                return format!("{value:.2e}");
            }
            return format!("{}{suffix}", trim(format!("{:.2}", value / size)));
        }
    }
    if abs < 0.01 {
        return format!("{value:.1e}");
    }
    trim(format!("{value:.2}"))
}

struct Panel<'a> {
    top: f64,
    title: String,
    unit: &'a str,
    /// One value per day index; `None` where there is no figure.
    values: Vec<Option<f64>>,
    bars: bool,
}

/// The SVG for a token's daily statistics (oldest first), with `unit` naming
/// the volume (the token's symbol).
pub fn daily_chart(stats: &[DailyStat], unit: Option<&str>) -> Markup {
    let days: Vec<NaiveDate> = stats
        .iter()
        .filter_map(|s| NaiveDate::parse_from_str(&s.day, "%Y-%m-%d").ok())
        .collect();
    let (Some(first), Some(last)) = (days.first().copied(), days.last().copied()) else {
        return html! {
            svg.chart xmlns="http://www.w3.org/2000/svg" width=(WIDTH) height="60" viewBox={"0 0 " (WIDTH) " 60"} role="img" aria-label="no daily statistics" {
                text x="12" y="34" class="chart-empty" { "No daily statistics for this token yet." }
            }
        };
    };
    let span = ((last - first).num_days() + 1).max(1) as usize;
    let mut transfers = vec![None; span];
    let mut volume = vec![None; span];
    let mut raw = vec![None; span];
    for (stat, day) in stats.iter().zip(&days) {
        let i = (*day - first).num_days() as usize;
        transfers[i] = Some(stat.transfer_count as f64);
        volume[i] = stat.volume.as_deref().and_then(|v| v.parse::<f64>().ok());
        raw[i] = stat.volume_raw.parse::<f64>().ok();
    }
    // Without decimals the scaled volume is unknown; show raw units, said so.
    let scaled_known = volume.iter().any(Option::is_some);
    let volume_unit = match (scaled_known, unit) {
        (true, Some(symbol)) => symbol.to_string(),
        (true, None) => "tokens".to_string(),
        (false, _) => "raw units (decimals unknown)".to_string(),
    };
    let panels = [
        Panel {
            top: PANEL_TOP[0],
            title: "Transfers per day".into(),
            unit: "transfers",
            values: transfers,
            bars: true,
        },
        Panel {
            top: PANEL_TOP[1],
            title: format!("Volume per day ({volume_unit})"),
            unit: &volume_unit,
            values: if scaled_known { volume } else { raw },
            bars: false,
        },
    ];
    let plot_width = WIDTH - LEFT - RIGHT;
    let slot = plot_width / span as f64;
    let x = |i: usize| LEFT + (i as f64 + 0.5) * slot;
    let label_every = span.div_ceil(MAX_DATE_LABELS).max(1);
    let summary = format!(
        "Daily transfers and volume from {first} to {last}, {} days with data",
        days.len()
    );
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" width=(WIDTH) height=(HEIGHT)
            viewBox={"0 0 " (WIDTH) " " (HEIGHT)} role="img" aria-label=(summary) {
            style { (PreEscaped(".chart text{font:11px sans-serif;fill:#333}.chart .t{font-weight:bold;font-size:12px}.chart .g{stroke:#e3e3e3}.chart .a{stroke:#666}.chart .bar{fill:#3b6fb6}.chart .line{fill:none;stroke:#c0562f;stroke-width:2}.chart .dot{fill:#c0562f}")) }
            @for panel in &panels {
                @let max = panel.values.iter().flatten().copied().fold(0.0, f64::max);
                @let (step, top) = nice_ticks(max);
                @let y = |v: f64| panel.top + PANEL_HEIGHT - (v / top) * PANEL_HEIGHT;
                text.t x=(LEFT) y=(panel.top - 10.0) { (panel.title) }
                // Horizontal grid and y labels.
                @for k in 0..=((top / step).round() as usize) {
                    @let v = k as f64 * step;
                    line.g x1=(LEFT) x2=(WIDTH - RIGHT) y1=(y(v)) y2=(y(v)) {}
                    text x=(LEFT - 6.0) y=(y(v) + 4.0) text-anchor="end" { (compact(v)) }
                }
                text x="14" y=(panel.top + PANEL_HEIGHT / 2.0) text-anchor="middle"
                    transform={"rotate(-90 14 " (panel.top + PANEL_HEIGHT / 2.0) ")"} { (panel.unit) }
                line.a x1=(LEFT) x2=(WIDTH - RIGHT) y1=(y(0.0)) y2=(y(0.0)) {}
                line.a x1=(LEFT) x2=(LEFT) y1=(panel.top) y2=(y(0.0)) {}
                @if panel.bars {
                    @for (i, value) in panel.values.iter().enumerate() {
                        @if let Some(v) = value {
                            @let width = (slot * 0.8).max(1.0);
                            rect.bar x=(x(i) - width / 2.0) y=(y(*v)) width=(width) height=(y(0.0) - y(*v)) {
                                title { (first + chrono::Days::new(i as u64)) ": " (compact(*v)) " " (panel.unit) }
                            }
                        }
                    }
                } @else {
                    @let points: Vec<String> = panel.values.iter().enumerate()
                        .filter_map(|(i, v)| v.map(|v| format!("{:.1},{:.1}", x(i), y(v))))
                        .collect();
                    polyline.line points=(points.join(" ")) {}
                    @for (i, value) in panel.values.iter().enumerate() {
                        @if let Some(v) = value {
                            circle.dot cx=(x(i)) cy=(y(*v)) r="2.5" {
                                title { (first + chrono::Days::new(i as u64)) ": " (compact(*v)) " " (panel.unit) }
                            }
                        }
                    }
                }
                // Date labels under each panel.
                @for i in (0..span).step_by(label_every) {
                    text x=(x(i)) y=(panel.top + PANEL_HEIGHT + X_LABEL_GAP) text-anchor="middle" {
                        ((first + chrono::Days::new(i as u64)).format("%Y-%m-%d"))
                    }
                }
            }
            text x=(WIDTH - RIGHT) y=(HEIGHT - 4.0) text-anchor="end" { "UTC days" }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(day: &str, transfers: i64, volume: Option<&str>) -> DailyStat {
        DailyStat {
            day: day.into(),
            transfer_count: transfers,
            unique_senders: 1,
            unique_receivers: 1,
            volume_raw: "1000".into(),
            volume: volume.map(str::to_string),
        }
    }

    #[test]
    fn ticks_are_round_and_cover_the_maximum() {
        assert_eq!(nice_ticks(9.0), (5.0, 10.0));
        assert_eq!(nice_ticks(1234.0), (500.0, 1500.0));
        assert_eq!(nice_ticks(0.0), (1.0, 1.0));
        let (step, top) = nice_ticks(0.037);
        assert!(top >= 0.037 && step > 0.0);
    }

    #[test]
    fn numbers_are_compact() {
        assert_eq!(compact(0.0), "0");
        assert_eq!(compact(1234.0), "1.23k");
        assert_eq!(compact(5_000_000.0), "5M");
        assert_eq!(compact(2.5e9), "2.5B");
        assert_eq!(compact(0.5), "0.5");
        assert_eq!(compact(0.000012), "1.2e-5");
    }

    #[test]
    fn the_chart_has_titles_units_dates_and_one_bar_per_day() {
        let stats = [
            stat("2024-03-01", 10, Some("1.5")),
            stat("2024-03-03", 40, Some("2500")),
        ];
        let svg = daily_chart(&stats, Some("USDC")).into_string();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("Transfers per day"));
        assert!(svg.contains("Volume per day (USDC)"));
        assert!(svg.contains(">2024-03-01<") && svg.contains(">2024-03-03<"));
        assert_eq!(svg.matches("<rect class=\"bar\"").count(), 2);
        assert!(svg.contains("2024-03-03: 2.5k USDC"));
        let unknown = daily_chart(&[stat("2024-03-01", 1, None)], None).into_string();
        assert!(unknown.contains("raw units (decimals unknown)"));
        assert!(daily_chart(&[], None)
            .into_string()
            .contains("No daily statistics"));
    }

    #[test]
    fn text_is_escaped() {
        let svg = daily_chart(&[stat("2024-03-01", 1, Some("1"))], Some("<b>&")).into_string();
        assert!(svg.contains("&lt;b&gt;&amp;") && !svg.contains("<b>&"));
    }
}
