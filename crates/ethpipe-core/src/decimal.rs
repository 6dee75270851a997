//! Exact arithmetic on decimal strings, for the places where no database type
//! can hold the numbers (SQLite sums of uint256 values) and for scaling raw
//! token amounts by their decimals without floating point.

/// Sum of two unsigned decimal strings, of any length.
pub fn add(a: &str, b: &str) -> String {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut out = Vec::with_capacity(a.len().max(b.len()) + 1);
    let mut carry = 0u8;
    let mut i = a.len();
    let mut j = b.len();
    while i > 0 || j > 0 || carry > 0 {
        let x = if i > 0 {
            i -= 1;
            a[i] - b'0'
        } else {
            0
        };
        let y = if j > 0 {
            j -= 1;
            b[j] - b'0'
        } else {
            0
        };
        let sum = x + y + carry;
        out.push(b'0' + sum % 10);
        carry = sum / 10;
    }
    while out.len() > 1 && out.last() == Some(&b'0') {
        out.pop();
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_else(|_| "0".to_string())
}

/// The largest `decimals` ethpipe scales by; above it the amount is unknown (NULL).
pub const MAX_DECIMALS: u32 = 255;

/// `raw / 10^decimals` written exactly, trailing zeros trimmed: `("1500", 3)` → `"1.5"`.
/// `None` when `decimals` is above [`MAX_DECIMALS`].
pub fn scale(raw: &str, decimals: u32) -> Option<String> {
    if decimals > MAX_DECIMALS {
        return None;
    }
    let digits = raw.trim_start_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let places = decimals as usize;
    if places == 0 {
        return Some(digits.to_string());
    }
    let padded = format!(
        "{}{digits}",
        "0".repeat((places + 1).saturating_sub(digits.len()))
    );
    let (whole, fraction) = padded.split_at(padded.len() - places);
    let fraction = fraction.trim_end_matches('0');
    Some(if fraction.is_empty() {
        whole.to_string()
    } else {
        format!("{whole}.{fraction}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_beyond_any_machine_integer() {
        assert_eq!(add("0", "0"), "0");
        assert_eq!(add("999", "1"), "1000");
        let max = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
        assert_eq!(
            add(max, max),
            "231584178474632390847141970017375815706539969331281128078915168015826259279870"
        );
    }

    #[test]
    fn scales_exactly() {
        assert_eq!(scale("1500", 3).as_deref(), Some("1.5"));
        assert_eq!(scale("1", 18).as_deref(), Some("0.000000000000000001"));
        assert_eq!(scale("1000000", 6).as_deref(), Some("1"));
        assert_eq!(scale("123", 0).as_deref(), Some("123"));
        assert_eq!(scale("0", 18).as_deref(), Some("0"));
        assert_eq!(
            scale("1234567890123456789012345", 18).as_deref(),
            Some("1234567.890123456789012345")
        );
        assert_eq!(scale("5", 256), None);
    }
}
