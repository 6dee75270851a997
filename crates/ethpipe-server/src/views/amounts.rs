//! Amounts and durations as people read them. Amounts arrive as exact
//! decimal text (uint256 sums scaled by a token's decimals); they are
//! rounded and grouped here on their digits, never through floating point,
//! so `1359783.040000000000031608` reads `1,359,783.04` and the page keeps
//! the exact text in the element's `title`.

use maud::{html, Markup};

/// Integer digits beyond which an amount is written as `1.36 × 10²⁷`.
const MAX_GROUPED_DIGITS: usize = 15;
/// Leading fractional zeros beyond which a small amount is written as
/// `1.23 × 10⁻⁸` (up to five: `0.00000123`).
const MAX_LEADING_ZEROS: usize = 5;

/// An amount for display, with the exact value (and unit) on hover.
pub fn amount(exact: &str, unit: Option<&str>) -> Markup {
    let unit = unit.filter(|u| !u.is_empty());
    let hover = match unit {
        Some(unit) => format!("{exact} {unit}"),
        None => exact.to_string(),
    };
    html! {
        span.amount title=(hover) data-exact=(exact) {
            (readable(exact)) @if let Some(unit) = unit { " " (unit) }
        }
    }
}

/// `exact` (decimal text, optionally signed) rounded and grouped: two
/// decimals for ordinary amounts, three significant digits for small ones,
/// powers of ten for very large or very small ones. Text that is not a
/// decimal number is returned as it is.
pub fn readable(exact: &str) -> String {
    let (negative, digits) = match exact.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, exact),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !is_digits(whole) || !is_digits(fraction) {
        return exact.to_string();
    }
    let whole = whole.trim_start_matches('0');
    let text = if whole.is_empty() {
        small(fraction)
    } else if whole.len() > MAX_GROUPED_DIGITS {
        let (mantissa, exponent) = three_significant(whole);
        scientific(mantissa, (whole.len() - 1 + exponent) as i64)
    } else {
        two_decimals(whole, fraction)
    };
    if negative && text != "0" {
        format!("-{text}")
    } else {
        text
    }
}

/// 1 ≤ amount < 10^15: rounded to two decimals (trailing zeros dropped).
fn two_decimals(whole: &str, fraction: &str) -> String {
    let cents: String = fraction.chars().chain("00".chars()).take(2).collect();
    let round_up = fraction.as_bytes().get(2).is_some_and(|d| *d >= b'5');
    let mut number: Vec<u8> = format!("{whole}{cents}").into_bytes();
    if round_up {
        increment(&mut number);
    }
    let split = number.len() - 2;
    let (whole, cents) = number.split_at(split);
    let whole = group(&String::from_utf8_lossy(whole));
    let cents = String::from_utf8_lossy(cents);
    let cents = cents.trim_end_matches('0');
    if cents.is_empty() {
        whole
    } else {
        format!("{whole}.{cents}")
    }
}

/// 0 ≤ amount < 1, from its fractional digits: three significant digits.
fn small(fraction: &str) -> String {
    let zeros = fraction.len() - fraction.trim_start_matches('0').len();
    let significant = &fraction[zeros..];
    if significant.is_empty() {
        return "0".into();
    }
    let (mantissa, carried) = three_significant(significant);
    if carried > zeros {
        return "1".into(); // 0.9999 rounds up to a whole one.
    }
    // A carry (0.0999 → 0.1) moves the first digit one place left.
    let zeros = zeros - carried;
    if zeros > MAX_LEADING_ZEROS {
        return scientific(mantissa, -(zeros as i64) - 1);
    }
    let digits = format!("{mantissa}");
    let digits = digits.trim_end_matches('0');
    format!("0.{}{digits}", "0".repeat(zeros))
}

/// The first three digits of `digits` rounded on the fourth, as 100..=999,
/// and 1 when rounding carried into a new digit (999.5 → 100, one place up).
fn three_significant(digits: &str) -> (u32, usize) {
    let head: String = digits.chars().chain("000".chars()).take(3).collect();
    let mut mantissa: u32 = head.parse().unwrap_or(0);
    if digits.as_bytes().get(3).is_some_and(|d| *d >= b'5') {
        mantissa += 1;
    }
    if mantissa >= 1000 {
        (100, 1)
    } else {
        (mantissa, 0)
    }
}

/// `mantissa` (100..=999, read as d.dd) × 10^exponent, e.g. `1.36 × 10²⁷`.
fn scientific(mantissa: u32, exponent: i64) -> String {
    let text = format!("{}.{:02}", mantissa / 100, mantissa % 100);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text} × 10{}", superscript(exponent))
}

fn superscript(n: i64) -> String {
    const DIGITS: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
    let sign = if n < 0 { "⁻" } else { "" };
    let digits: String = n
        .unsigned_abs()
        .to_string()
        .bytes()
        .map(|b| DIGITS[usize::from(b - b'0')])
        .collect();
    format!("{sign}{digits}")
}

/// Adds one to a number written as ASCII digits (growing it on a carry).
fn increment(number: &mut Vec<u8>) {
    for digit in number.iter_mut().rev() {
        if *digit == b'9' {
            *digit = b'0';
        } else {
            *digit += 1;
            return;
        }
    }
    number.insert(0, b'1');
}

/// `1234567` → `1,234,567`.
pub fn group(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration in milliseconds as people read it: `850 ms`, `1.24 s`,
/// `12.3 s`, `2 min 3 s`, `1 h 5 min`.
pub fn duration(seconds: Option<f64>) -> String {
    let Some(seconds) = seconds.filter(|s| s.is_finite() && *s >= 0.0) else {
        return "–".into();
    };
    let millis = (seconds * 1000.0).round() as u64;
    match millis {
        0 => "< 1 ms".into(),
        1..=999 => format!("{millis} ms"),
        // Whole numbers, rounded half up, so the page script (the same
        // arithmetic) shows the same text.
        1_000..=9_994 => {
            let hundredths = (millis + 5) / 10;
            format!("{}.{:02} s", hundredths / 100, hundredths % 100)
        }
        9_995..=59_949 => {
            let tenths = (millis + 50) / 100;
            format!("{}.{} s", tenths / 10, tenths % 10)
        }
        _ => {
            let whole = (millis + 500) / 1000;
            match whole {
                0..=3_599 => format!("{} min {} s", whole / 60, whole % 60),
                _ => format!("{} h {} min", whole / 3600, (whole % 3600) / 60),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_amounts_are_grouped_with_two_decimals() {
        for (exact, shown) in [
            ("1359783.040000000000031608", "1,359,783.04"),
            ("1359783.045", "1,359,783.05"),
            ("999.995", "1,000"),
            ("1000", "1,000"),
            ("1.5", "1.5"),
            ("12", "12"),
            ("-1234.5", "-1,234.5"),
            ("999999999999999", "999,999,999,999,999"),
        ] {
            assert_eq!(readable(exact), shown, "{exact}");
        }
    }

    #[test]
    fn small_and_large_amounts_keep_three_significant_digits() {
        for (exact, shown) in [
            ("0.5", "0.5"),
            ("0.001234", "0.00123"),
            ("0.0999999", "0.1"),
            ("0.99999", "1"),
            ("0.00000123", "0.00000123"),
            ("0.0000001234", "1.23 × 10⁻⁷"),
            ("0.000000000000000001", "1 × 10⁻¹⁸"),
            ("0", "0"),
            ("0.000", "0"),
            ("1359783040000000000000031608", "1.36 × 10²⁷"),
            ("9999999999999999", "1 × 10¹⁶"),
            (
                "115792089237316195423570985008687907853269984665640564039457584007913129639935",
                "1.16 × 10⁷⁷",
            ),
        ] {
            assert_eq!(readable(exact), shown, "{exact}");
        }
    }

    #[test]
    fn text_that_is_not_a_number_is_left_alone() {
        for text in ["", "abc", "1e5", "1.2.3", "-", ".5"] {
            assert_eq!(readable(text), text);
        }
    }

    #[test]
    fn the_exact_value_is_kept_on_hover() {
        let html = amount("1359783.040000000000031608", Some("WDETH")).into_string();
        assert!(
            html.contains(r#"title="1359783.040000000000031608 WDETH""#),
            "{html}"
        );
        assert!(html.contains(">1,359,783.04 WDETH<"), "{html}");
    }

    #[test]
    fn durations_read_in_milliseconds_seconds_and_minutes() {
        for (seconds, shown) in [
            (None, "–"),
            (Some(0.0), "< 1 ms"),
            (Some(0.85), "850 ms"),
            (Some(0.0004), "< 1 ms"),
            (Some(1.2449), "1.25 s"), // 1245 ms
            (Some(1.2441), "1.24 s"),
            (Some(9.9944), "9.99 s"),
            (Some(9.9951), "10.0 s"),
            (Some(12.34), "12.3 s"),
            (Some(123.4), "2 min 3 s"),
            (Some(3_900.0), "1 h 5 min"),
        ] {
            assert_eq!(duration(seconds), shown, "{seconds:?}");
        }
    }
}
