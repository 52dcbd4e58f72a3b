//! List pagination as AIP-158 has it: a request's `page_size` and `page_token`, a response's
//! `next_page_token`. Pure: the size rules and the token's encoding.
//!
//! - `page_size` 0 means [`DEFAULT_PAGE_SIZE`]; above [`MAX_PAGE_SIZE`] it is lowered to it;
//!   negative is INVALID_ARGUMENT. The adapter may end a page early to keep the response under
//!   the gRPC message limit; `next_page_token` then goes on from there.
//! - A token is opaque to clients: hex of a fingerprint of the List's filter (the kind, label
//!   selector and namespace) and the sort key of the last object sent. Objects are listed in
//!   sort-key order (the order each List documents), and the next page starts after that key,
//!   so an object created or deleted between pages moves nothing else: every object that
//!   exists throughout is listed exactly once. A token used with another filter, or one weftd
//!   did not make, is INVALID_ARGUMENT.

use super::Invalid;

/// Objects per page when the request does not say.
pub const DEFAULT_PAGE_SIZE: usize = 500;
/// The most objects one page holds; a larger `page_size` is lowered to it.
pub const MAX_PAGE_SIZE: usize = 1000;

/// Where a page starts and how long it is, from a List request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// Objects to return at most.
    pub size: usize,
    /// Sort key of the last object already sent; None for the first page.
    pub after: Option<String>,
    /// Fingerprint of the filter the pages are for.
    filter: u64,
}

/// FNV-1a over `bytes`: stable across releases and restarts, so a token outlives a restart.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The refusal of a token.
fn bad_token(problem: &str) -> Invalid {
    Invalid::new("page_token", problem)
}

impl PageRequest {
    /// Reads `page_size` and `page_token` for a List whose filter is described by `filter`
    /// (any text that differs when the filter does).
    pub fn parse(page_size: i32, page_token: &str, filter: &str) -> Result<PageRequest, Invalid> {
        let size = match page_size {
            n if n < 0 => {
                return Err(Invalid::new(
                    "page_size",
                    format!(
                        "{n} is negative; give 0 for the default ({DEFAULT_PAGE_SIZE}) or up to {MAX_PAGE_SIZE}"
                    ),
                ));
            }
            0 => DEFAULT_PAGE_SIZE,
            n => (n as usize).min(MAX_PAGE_SIZE),
        };
        let filter = fnv(filter.as_bytes());
        let after = match page_token {
            "" => None,
            t => Some(Self::decode(t, filter)?),
        };
        Ok(PageRequest {
            size,
            after,
            filter,
        })
    }

    /// The token of the page that follows the object with sort key `last`.
    pub fn token_after(&self, last: &str) -> String {
        let mut bytes = self.filter.to_be_bytes().to_vec();
        bytes.extend_from_slice(last.as_bytes());
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The sort key a token goes on after; refused unless it was made for `filter`.
    fn decode(token: &str, filter: u64) -> Result<String, Invalid> {
        let malformed = || {
            bad_token(
                "is not a token this List returned; pass next_page_token unchanged, or leave \
                 page_token empty to start from the first page",
            )
        };
        if !token.len().is_multiple_of(2) || token.len() < 16 {
            return Err(malformed());
        }
        let bytes = (0..token.len())
            .step_by(2)
            .map(|i| {
                token
                    .get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(malformed)?;
        let (fp, key) = bytes.split_at(8);
        let fp = u64::from_be_bytes(fp.try_into().map_err(|_| malformed())?);
        if fp != filter {
            return Err(bad_token(
                "was returned for a List with another filter (label_selector or namespace); \
                 send the same filter with every page, or start again without page_token",
            ));
        }
        String::from_utf8(key.to_vec()).map_err(|_| malformed())
    }

    /// The page of `items` (each with its sort key, in any order) this request asks for:
    /// sorted by key, after `after`, at most `size`; and whether more follow.
    pub fn select<T>(&self, mut items: Vec<(String, T)>) -> (Vec<(String, T)>, bool) {
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let mut rest: Vec<(String, T)> = match &self.after {
            Some(after) => items.into_iter().filter(|(k, _)| k > after).collect(),
            None => items,
        };
        let more = rest.len() > self.size;
        rest.truncate(self.size);
        (rest, more)
    }
}

#[cfg(test)]
mod tests {
    //! Page sizes, tokens, and that pages cover everything exactly once.

    use super::*;

    #[test]
    fn page_size_defaults_and_is_capped() {
        assert_eq!(
            PageRequest::parse(0, "", "f").unwrap().size,
            DEFAULT_PAGE_SIZE
        );
        assert_eq!(PageRequest::parse(7, "", "f").unwrap().size, 7);
        assert_eq!(
            PageRequest::parse(1_000_000, "", "f").unwrap().size,
            MAX_PAGE_SIZE
        );
        let e = PageRequest::parse(-1, "", "f").unwrap_err();
        assert_eq!(e.field, "page_size");
    }

    #[test]
    fn a_token_goes_on_after_its_key_and_only_for_its_filter() {
        let first = PageRequest::parse(2, "", "namespaces|app=web").unwrap();
        let token = first.token_after("b");
        let next = PageRequest::parse(2, &token, "namespaces|app=web").unwrap();
        assert_eq!(next.after.as_deref(), Some("b"));
        let e = PageRequest::parse(2, &token, "namespaces|app=db").unwrap_err();
        assert_eq!(e.field, "page_token");
        assert!(e.problem.contains("another filter"), "{e}");
        for bad in ["x", "zz", "0011", &token[1..], "not a token at all!"] {
            let e = PageRequest::parse(2, bad, "namespaces|app=web").unwrap_err();
            assert!(e.problem.contains("not a token"), "{bad}: {e}");
        }
    }

    #[test]
    fn pages_cover_every_item_exactly_once_in_order() {
        let items: Vec<(String, usize)> = (0..120).rev().map(|i| (format!("n{i:03}"), i)).collect();
        let mut seen = Vec::new();
        let mut page = PageRequest::parse(50, "", "f").unwrap();
        let mut pages = 0;
        loop {
            let (got, more) = page.select(items.clone());
            pages += 1;
            seen.extend(got.iter().map(|(_, v)| *v));
            if !more {
                break;
            }
            let token = page.token_after(&got.last().unwrap().0);
            page = PageRequest::parse(50, &token, "f").unwrap();
        }
        assert_eq!(pages, 3);
        assert_eq!(seen, (0..120).collect::<Vec<_>>());
    }
}
