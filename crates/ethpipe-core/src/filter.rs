//! A token filter: the set of token contracts a pipeline is limited to.
//!
//! `Option<TokenFilter>` is how the rest of ethpipe speaks of it: `None`
//! means every token. A filter is never empty (an empty list is an input
//! error, not "nothing" nor "everything"), holds each address once (a
//! duplicate is reported, not silently merged: it usually hides a typo in
//! the other entry) and keeps them sorted, so its [`canonical`] text is the
//! same for the same set whatever order the user wrote it in; that text is
//! what the ledger records.
//!
//! [`canonical`]: TokenFilter::canonical

use std::fmt;
use std::sync::Arc;

/// A non-empty, sorted set of distinct lowercase `0x` + 40-hex addresses.
/// Cheap to clone: sources hand it to their spawned tasks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenFilter(Arc<[String]>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("the token list is empty: name at least one token address (0x followed by 40 hex digits), or leave the filter out to load every token")]
    Empty,
    #[error("'{0}' is not a token address: expected 0x followed by 40 hex digits")]
    Malformed(String),
    #[error("token address {0} is listed twice")]
    Duplicate(String),
}

impl TokenFilter {
    /// Parses a comma-separated list (`--tokens`, `ETHPIPE_TOKENS`, the
    /// ledger's canonical text). Spaces around entries are ignored.
    pub fn parse_list(text: &str) -> Result<TokenFilter, FilterError> {
        if text.trim().is_empty() {
            return Err(FilterError::Empty);
        }
        TokenFilter::new(text.split(',').map(str::trim))
    }

    /// A filter of these addresses, each checked; any case is accepted and
    /// lowercased, as a checksummed (EIP-55) address is the same address.
    pub fn new<'a>(
        addresses: impl IntoIterator<Item = &'a str>,
    ) -> Result<TokenFilter, FilterError> {
        let mut parsed = Vec::new();
        for address in addresses {
            let lower = crate::validate::address(0, "token", Some(address))
                .map_err(|_| FilterError::Malformed(address.to_string()))?;
            parsed.push(lower);
        }
        if parsed.is_empty() {
            return Err(FilterError::Empty);
        }
        parsed.sort();
        if let Some(pair) = parsed.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(FilterError::Duplicate(pair[0].clone()));
        }
        Ok(TokenFilter(parsed.into()))
    }

    /// The addresses, sorted.
    pub fn addresses(&self) -> &[String] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a filter names at least one token.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, address: &str) -> bool {
        self.0.binary_search_by(|a| a.as_str().cmp(address)).is_ok()
    }

    /// Whether every address of `other` is in this filter.
    pub fn covers(&self, other: &TokenFilter) -> bool {
        other.0.iter().all(|a| self.contains(a))
    }

    /// The addresses comma-joined in order: the ledger's text of the filter.
    pub fn canonical(&self) -> String {
        self.0.join(",")
    }

    /// A short label for tables: the address when there is one, else
    /// "N tokens".
    pub fn short(&self) -> String {
        match &*self.0 {
            [one] => one.clone(),
            many => format!("{} tokens", many.len()),
        }
    }

    /// Splits into filters of at most `size` addresses, in order (a node
    /// may limit the addresses of one `eth_getLogs`).
    pub fn chunks(&self, size: usize) -> Vec<TokenFilter> {
        self.0
            .chunks(size.max(1))
            .map(|chunk| TokenFilter(chunk.to_vec().into()))
            .collect()
    }
}

/// Whether data loaded with `loaded` holds every row `wanted` asks for:
/// an unfiltered load covers any filter; a filtered one covers only subsets
/// of itself, never "every token".
pub fn covers(loaded: Option<&TokenFilter>, wanted: Option<&TokenFilter>) -> bool {
    match (loaded, wanted) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(loaded), Some(wanted)) => loaded.covers(wanted),
    }
}

impl fmt::Display for TokenFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.short())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0x1111111111111111111111111111111111111111";
    const B: &str = "0x2222222222222222222222222222222222222222";

    #[test]
    fn a_list_is_checked_lowercased_and_sorted() {
        let upper_b = B.replace("0x", "0X");
        let filter = TokenFilter::parse_list(&format!(" {upper_b} ,{A}")).unwrap();
        assert_eq!(filter.addresses(), [A, B]);
        assert_eq!(filter.canonical(), format!("{A},{B}"));
        assert_eq!(filter.short(), "2 tokens");
        assert_eq!(TokenFilter::parse_list(A).unwrap().short(), A);
        let mixed = "0xAbCdEf0000000000000000000000000000000001";
        assert_eq!(
            TokenFilter::parse_list(mixed).unwrap().addresses(),
            [mixed.to_lowercase()]
        );
    }

    #[test]
    fn bad_lists_are_errors() {
        assert_eq!(TokenFilter::parse_list(""), Err(FilterError::Empty));
        assert_eq!(TokenFilter::parse_list("  "), Err(FilterError::Empty));
        assert_eq!(TokenFilter::new([]), Err(FilterError::Empty));
        assert_eq!(
            TokenFilter::parse_list("0x12"),
            Err(FilterError::Malformed("0x12".into()))
        );
        assert_eq!(
            TokenFilter::parse_list(&format!("{A},")),
            Err(FilterError::Malformed(String::new()))
        );
        assert_eq!(
            TokenFilter::parse_list(&format!("{A},{B},{}", A.to_uppercase().replace("0X", "0x"))),
            Err(FilterError::Duplicate(A.into()))
        );
    }

    #[test]
    fn coverage_follows_the_sets() {
        let a = TokenFilter::parse_list(A).unwrap();
        let ab = TokenFilter::parse_list(&format!("{A},{B}")).unwrap();
        assert!(covers(None, None) && covers(None, Some(&a)));
        assert!(!covers(Some(&a), None));
        assert!(covers(Some(&ab), Some(&a)));
        assert!(!covers(Some(&a), Some(&ab)));
        assert_eq!(ab.chunks(1), [a, TokenFilter::parse_list(B).unwrap()]);
    }
}
