//! The PostgreSQL binary COPY format, written by hand into one buffer per batch
//! for every dataset: a row writes its cells through [`CellWriter`] and each
//! column type is a few lines here, with exact `numeric` encoding for uint256
//! values.

use bytes::{BufMut, BytesMut};
use chrono::{DateTime, Utc};
use ethpipe_core::dataset::CellWriter;
use ethpipe_core::{Row, Uint};

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
/// Seconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

pub fn header(buf: &mut BytesMut) {
    buf.put_slice(SIGNATURE);
    buf.put_i32(0); // flags
    buf.put_i32(0); // header extension length
}

pub fn trailer(buf: &mut BytesMut) {
    buf.put_i16(-1);
}

/// Appends one tuple: the field count, then each cell the row writes.
pub fn row(buf: &mut BytesMut, fields: i16, row: &dyn Row) {
    buf.put_i16(fields);
    row.write(&mut Encoder(buf));
}

/// Encodes cells straight into the COPY buffer.
struct Encoder<'a>(&'a mut BytesMut);

impl CellWriter for Encoder<'_> {
    fn text(&mut self, value: Option<&str>) {
        text(self.0, value);
    }

    fn uint(&mut self, value: Option<&Uint>) {
        numeric(self.0, value);
    }

    fn int(&mut self, value: i64) {
        int8(self.0, value);
    }

    fn timestamp(&mut self, value: DateTime<Utc>) {
        timestamptz(self.0, value);
    }

    fn boolean(&mut self, value: bool) {
        boolean(self.0, value);
    }
}

fn boolean(buf: &mut BytesMut, value: bool) {
    buf.put_i32(1);
    buf.put_u8(u8::from(value));
}

fn null(buf: &mut BytesMut) {
    buf.put_i32(-1);
}

fn text(buf: &mut BytesMut, value: Option<&str>) {
    match value {
        Some(v) => {
            buf.put_i32(v.len() as i32);
            buf.put_slice(v.as_bytes());
        }
        None => null(buf),
    }
}

fn int8(buf: &mut BytesMut, value: i64) {
    buf.put_i32(8);
    buf.put_i64(value);
}

fn timestamptz(buf: &mut BytesMut, value: DateTime<Utc>) {
    buf.put_i32(8);
    buf.put_i64(value.timestamp_micros() - PG_EPOCH_OFFSET_MICROS);
}

/// `numeric` wire form: ndigits, weight, sign, dscale, then base-10000 digits,
/// most significant first. Integers only (dscale 0).
fn numeric(buf: &mut BytesMut, value: Option<&Uint>) {
    let Some(value) = value else { return null(buf) };
    let digits = base_10000_digits(value.as_str());
    // Trailing zero groups are implied by the weight.
    let significant = digits.iter().rposition(|d| *d != 0).map_or(0, |i| i + 1);
    buf.put_i32(8 + 2 * significant as i32);
    buf.put_i16(significant as i16);
    buf.put_i16(digits.len().saturating_sub(1) as i16);
    buf.put_u16(0x0000); // positive
    buf.put_u16(0); // dscale
    for digit in &digits[..significant] {
        buf.put_i16(*digit);
    }
}

fn base_10000_digits(decimal: &str) -> Vec<i16> {
    if decimal == "0" {
        return Vec::new();
    }
    let bytes = decimal.as_bytes();
    let first_group = match bytes.len() % 4 {
        0 => 4,
        n => n,
    };
    let mut groups = Vec::with_capacity(bytes.len() / 4 + 1);
    let mut start = 0;
    let mut end = first_group;
    while start < bytes.len() {
        let group = bytes[start..end]
            .iter()
            .fold(0i16, |acc, b| acc * 10 + (b - b'0') as i16);
        groups.push(group);
        start = end;
        end += 4;
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_groups_from_the_right() {
        assert_eq!(base_10000_digits("0"), Vec::<i16>::new());
        assert_eq!(base_10000_digits("7"), vec![7]);
        assert_eq!(base_10000_digits("12345"), vec![1, 2345]);
        assert_eq!(base_10000_digits("100000000"), vec![1, 0, 0]);
    }

    #[test]
    fn numeric_trims_trailing_zero_groups_and_keeps_the_weight() {
        let mut buf = BytesMut::new();
        numeric(&mut buf, Uint::parse_decimal("100000000").as_ref());
        // len 10 = 8 header + 1 digit; ndigits 1, weight 2, sign 0, dscale 0, digit 1
        assert_eq!(&buf[..], &[0, 0, 0, 10, 0, 1, 0, 2, 0, 0, 0, 0, 0, 1]);
    }
}
