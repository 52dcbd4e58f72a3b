//! Labels and Kubernetes-style label selectors (`a=b,c!=d,e,!f`).
//!
//! Every object carries labels; List calls filter by a selector. Labels are kept sorted
//! ([`Labels`] is a `BTreeMap`), so they are stored and shown in one order. A selector is
//! parsed once ([`Selector::parse`]) and then matched against each object's labels.

use std::collections::BTreeMap;

use super::Invalid;

/// An object's labels, sorted by key.
pub type Labels = BTreeMap<String, String>;

/// Checks label keys and values: keys 1 to 63 bytes of `[A-Za-z0-9._/-]`, values at most 255
/// bytes without control characters.
pub fn check_labels(field: &str, labels: &Labels) -> Result<(), Invalid> {
    for (k, v) in labels {
        if k.is_empty()
            || k.len() > 63
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._/-".contains(c))
        {
            return Err(Invalid::new(
                field,
                format!(
                    "label key {k:?} must be 1 to 63 characters of letters, digits, '.', '_', '/', '-'"
                ),
            ));
        }
        if v.len() > 255 || v.chars().any(char::is_control) {
            return Err(Invalid::new(
                field,
                format!("label {k:?} has a value longer than 255 bytes or with control characters"),
            ));
        }
    }
    Ok(())
}

/// One term of a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Term {
    /// `key=value` (or `key==value`): the label is there with this value.
    Eq(String, String),
    /// `key!=value`: the label is missing or has another value.
    Ne(String, String),
    /// `key`: the label is there, with any value.
    Has(String),
    /// `!key`: the label is missing.
    Lacks(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector(Vec<Term>);

impl Selector {
    /// Parses `key=value`, `key==value`, `key!=value`, `key` and `!key` terms, comma separated.
    pub fn parse(s: &str) -> Result<Selector, Invalid> {
        let mut terms = Vec::new();
        for raw in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let bad = || {
                Invalid::new(
                    "label_selector",
                    format!("cannot parse {raw:?}: use key=value, key!=value, key or !key"),
                )
            };
            let term = if let Some((k, v)) = raw.split_once("!=") {
                Term::Ne(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, v)) = raw.split_once("==").or_else(|| raw.split_once('=')) {
                Term::Eq(k.trim().to_string(), v.trim().to_string())
            } else if let Some(k) = raw.strip_prefix('!') {
                Term::Lacks(k.trim().to_string())
            } else {
                Term::Has(raw.to_string())
            };
            let key = match &term {
                Term::Eq(k, _) | Term::Ne(k, _) | Term::Has(k) | Term::Lacks(k) => k,
            };
            if key.is_empty() || key.contains(['=', '!']) {
                return Err(bad());
            }
            terms.push(term);
        }
        Ok(Selector(terms))
    }

    /// True if `labels` satisfies every term.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.0.iter().all(|t| match t {
            Term::Eq(k, v) => labels.get(k) == Some(v),
            Term::Ne(k, v) => labels.get(k) != Some(v),
            Term::Has(k) => labels.contains_key(k),
            Term::Lacks(k) => !labels.contains_key(k),
        })
    }
}

#[cfg(test)]
mod tests {
    //! Label checks and selector parsing and matching.

    use super::*;

    /// Labels from key-value pairs.
    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Equality, inequality, existence and absence terms, alone and combined.
    #[test]
    fn selector_terms() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        assert!(Selector::parse("").unwrap().matches(&l));
        assert!(Selector::parse("app=web").unwrap().matches(&l));
        assert!(Selector::parse("app==web, tier").unwrap().matches(&l));
        assert!(!Selector::parse("app=db").unwrap().matches(&l));
        assert!(Selector::parse("app!=db,!missing").unwrap().matches(&l));
        assert!(!Selector::parse("!app").unwrap().matches(&l));
        assert!(Selector::parse("=x").is_err());
    }

    /// Label keys may hold ".", "/" and "-", but no white space, and cannot be empty.
    #[test]
    fn label_keys_are_checked() {
        assert!(check_labels("labels", &labels(&[("a.b/c-d", "")])).is_ok());
        assert!(check_labels("labels", &labels(&[("a b", "x")])).is_err());
        assert!(check_labels("labels", &labels(&[("", "x")])).is_err());
    }
}
