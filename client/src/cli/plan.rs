//! `--dry-run`: what a mutating verb prints instead of its usual answer.
//!
//! The request goes to weftd with `dry_run: true`; weftd validates it and answers with the
//! changes it would make (`planned_changes`), storing and changing nothing. The CLI prints them:
//!
//! - table: `ACTION  KIND  TARGET  DETAIL`, one row per change, and nothing else (a dry run
//!   that would change nothing prints the header alone);
//! - `--format json`: one object, `{"dryRun": true, "plannedChanges": [...], ...}`, where `...` is
//!   what the verb prints in JSON without `--dry-run`, keyed by what it is: `"namespace"`,
//!   `"link"`, `"network"`, `"endpoint"` for the object the call would make or change (as weftd
//!   answered it), or the fields of the verb's own JSON object (`"deleted"` for `rm` and
//!   `prune`: what would be deleted; `"network"` and `"namespace"` for `disconnect`).
//!
//! A dry run that weftd refuses fails like the real call would (`Error: ...`, exit 1).

use anyhow::Result;
use serde_json::{Map, Value};
use weft::v1::PlannedChange;

use super::{Ctx, format::Shown, table};

/// Prints a dry run's `changes`; `fields` makes the rest of the JSON object (not called in
/// table mode).
pub fn print<'a>(
    ctx: &Ctx,
    changes: &[PlannedChange],
    fields: impl FnOnce() -> Vec<(&'a str, Value)>,
) -> Result<()> {
    ctx.print_value(
        || object(changes, fields()),
        || table::planned_changes(changes),
    )
}

/// The JSON object of a dry run: `dry_run: true`, the `planned_changes`, and `fields` (a
/// field named like one of the first two would replace it; no verb uses those names).
pub fn object(changes: &[PlannedChange], fields: Vec<(&str, Value)>) -> Value {
    let mut m = Map::new();
    m.insert("dryRun".into(), Value::Bool(true));
    m.insert(
        "plannedChanges".into(),
        Value::Array(changes.iter().map(Shown::json).collect()),
    );
    for (k, v) in fields {
        m.insert(k.to_string(), v);
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The dry-run JSON is one object: `dryRun`, `plannedChanges`, and the verb's own fields;
    /// each change is canonical JSON (its empty `detail` left out).
    #[test]
    fn json_has_the_changes_and_the_fields() {
        let c = PlannedChange {
            action: "delete".into(),
            kind: "namespace".into(),
            target: "ns1".into(),
            detail: String::new(),
        };
        assert_eq!(
            crate::cli::format::render(&object(&[c], vec![("deleted", json!(["ns1"]))])),
            r#"{
  "deleted": [
    "ns1"
  ],
  "dryRun": true,
  "plannedChanges": [
    {
      "action": "delete",
      "kind": "namespace",
      "target": "ns1"
    }
  ]
}
"#
        );
    }
}
