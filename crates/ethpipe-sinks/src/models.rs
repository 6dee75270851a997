//! SQL model files: splitting a file into statements and the `:day` placeholder.

/// A SQL model: one file's statements, run on each loaded day inside the
/// day's transaction.
#[derive(Debug, Clone)]
pub struct Model {
    /// The file name, e.g. `010_daily_volume.sql`; names the step in the ledger.
    pub name: String,
    pub statements: Vec<String>,
}

/// Where the next non-code span (quoted text, dollar-quoted body, comment)
/// starting at `i` ends, or `None` when `i` starts plain code.
fn skip_non_code(sql: &str, i: usize) -> Option<usize> {
    let bytes = sql.as_bytes();
    match bytes[i] {
        b'\'' | b'"' => Some(skip_quoted(bytes, i, bytes[i])),
        b'-' if bytes.get(i + 1) == Some(&b'-') => {
            Some(sql[i..].find('\n').map_or(bytes.len(), |n| i + n + 1))
        }
        b'/' if bytes.get(i + 1) == Some(&b'*') => Some(
            sql[i + 2..]
                .find("*/")
                .map_or(bytes.len(), |n| i + 2 + n + 2),
        ),
        b'$' => Some(skip_dollar_quoted(sql, i)).filter(|end| *end > i + 1),
        _ => None,
    }
}

/// Splits SQL text at top-level semicolons, respecting quotes ('…', "…"),
/// dollar quotes ($$…$$, $tag$…$tag$) and comments. Empty statements are dropped.
pub fn split_statements(sql: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < sql.len() {
        if let Some(end) = skip_non_code(sql, i) {
            i = end;
        } else if sql.as_bytes()[i] == b';' {
            statements.push(sql[start..i].to_string());
            i += 1;
            start = i;
        } else {
            i += 1;
        }
    }
    statements.push(sql[start..].to_string());
    statements
        .into_iter()
        .filter(|s| !is_blank(s))
        .map(|s| s.trim().to_string())
        .collect()
}

fn skip_quoted(bytes: &[u8], open: usize, quote: u8) -> usize {
    let mut i = open + 1;
    while i < bytes.len() {
        if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2; // doubled quote inside the literal
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

fn skip_dollar_quoted(sql: &str, open: usize) -> usize {
    let rest = &sql[open + 1..];
    let tag_len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    if rest.as_bytes().get(tag_len) != Some(&b'$')
        || rest[..tag_len].starts_with(|c: char| c.is_ascii_digit())
    {
        return open + 1; // `$1` and the like are parameters, not quotes
    }
    let tag = &sql[open..open + tag_len + 2];
    let body = open + tag.len();
    sql[body..]
        .find(tag)
        .map_or(sql.len(), |n| body + n + tag.len())
}

/// Whether a statement is only whitespace and comments.
fn is_blank(statement: &str) -> bool {
    let mut i = 0;
    while i < statement.len() {
        let b = statement.as_bytes()[i];
        let comment = (b == b'-' || b == b'/') && skip_non_code(statement, i).is_some();
        if comment {
            i = skip_non_code(statement, i).unwrap_or(statement.len());
        } else if b.is_ascii_whitespace() {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// `:day` → `$1` for PostgreSQL, leaving `::casts`, quoted text and comments alone.
pub fn day_placeholder_to_dollar(statement: &str) -> String {
    let bytes = statement.as_bytes();
    let mut out = String::with_capacity(statement.len());
    let mut i = 0;
    while i < bytes.len() {
        if let Some(end) = skip_non_code(statement, i) {
            out.push_str(&statement[i..end]);
            i = end;
            continue;
        }
        let is_placeholder = statement[i..].starts_with(":day")
            && (i == 0 || bytes[i - 1] != b':')
            && !bytes
                .get(i + 4)
                .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
        if is_placeholder {
            out.push_str("$1");
            i += 4;
        } else {
            let ch = statement[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_top_level_semicolons_only() {
        let sql = "DELETE FROM x WHERE d = :day; -- done; really\n\
                   INSERT INTO x SELECT ';' , $$a;b$$, $f$ c; $f$, \"we;ird\" FROM y /* ; */;\n\
                   -- only a comment;\n";
        let statements = split_statements(sql);
        assert_eq!(statements.len(), 2, "{statements:?}");
        assert!(statements[1].starts_with("-- done; really\nINSERT INTO x SELECT ';'"));
        assert!(statements[1].ends_with("/* ; */"));
        assert_eq!(split_statements("SELECT $1::date").len(), 1);
    }

    #[test]
    fn rewrites_the_day_placeholder_only() {
        assert_eq!(
            day_placeholder_to_dollar(
                "SELECT :day::date, ':day', x::dayname, :days FROM t WHERE d = :day"
            ),
            "SELECT $1::date, ':day', x::dayname, :days FROM t WHERE d = $1"
        );
        assert_eq!(
            day_placeholder_to_dollar(
                "-- the day's rows, :day\nDELETE FROM t WHERE d = :day /* :day */"
            ),
            "-- the day's rows, :day\nDELETE FROM t WHERE d = $1 /* :day */"
        );
    }
}
