//! `weft ns|link|network watch` (and `ls --watch`): a Watch RPC's stream, printed as it arrives.
//!
//! weftd sends every current object as ADDED, then each change (ADDED, MODIFIED, DELETED) with
//! its revision. Each event is printed and flushed as one line:
//!
//! - table: `TYPE  OBJECT  STATE  rev N`, e.g. `ADDED     ns1   Ready   rev 5591444337264164871`.
//!   TYPE is padded to the widest type; OBJECT (a link's is `NAMESPACE/NAME`) and STATE are
//!   padded to the widest seen so far, so a stream stays aligned as far as it can be without
//!   knowing what comes next. No header.
//! - `--format json`: one compact JSON object per line, `{"object": {...}, "revision": N,
//!   "type": "ADDED"}`, the object as `inspect --format json` prints it (`null` if weftd sent
//!   none).
//! - `--format TEMPLATE`: the template over `{Type, Revision, Object}` per event, `Object`
//!   holding the object's template data (`{{.Type}} {{.Object.Name}}`).
//!
//! A watch has no deadline: `--timeout` bounds only dialling weftd and its first answer, never
//! the stream. It ends when interrupted, when weftd ends the stream (exit 0), after
//! `--max-events N` events (exit 0), when the reader goes away (`| head`, exit 0), or on an
//! error (exit 1). `--since REV` resumes after a revision; weftd answers FAILED_PRECONDITION
//! when it no longer remembers that far back, which is printed as any refusal is (exit 1).

use std::future::Future;

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};
use tonic::codec::Streaming;
use weft::{
    Client,
    v1::{
        Link, Namespace, Network, WatchLinksResponse, WatchNamespacesResponse,
        WatchNetworksResponse,
    },
};

use super::{
    Ctx, Shape,
    format::{self, Shown},
    table, usage,
};

/// The flags `weft ns|link|network ls` share, after the noun's own (which come first in
/// `--help`): the label selector, `-q`, and `--watch` with the flags of a watch. The help of
/// `--watch` names the noun's watch command, and link's `-q` prints more than names, so each
/// noun's `LsArgs` overrides those help lines with `mut_arg`.
#[derive(Debug, Args)]
pub struct ListFlags {
    /// Label selector: comma-separated KEY=VALUE, KEY!=VALUE, KEY or !KEY.
    #[arg(long, short = 'l', value_name = "SEL", default_value = "")]
    pub selector: String,
    /// Print only the names.
    #[arg(long, short = 'q', conflicts_with = "watch")]
    pub quiet: bool,
    /// After the list, print every change as it happens (the same as `weft NOUN watch`).
    #[arg(long, short = 'w')]
    pub watch: bool,
    /// With --watch.
    #[command(flatten, next_help_heading = "Watch options (with --watch)")]
    pub flags: WatchFlags,
}

/// The flags every watch takes.
#[derive(Debug, Default, Args)]
pub struct WatchFlags {
    /// Resume after revision REV (the `rev` of the last event seen): start with what changed
    /// since instead of every current object. weftd remembers its last 10,000 changes; for an
    /// older revision, or one from before a restart, it refuses (exit 1): list again, then
    /// watch without --since.
    #[arg(long, value_name = "REV")]
    pub since: Option<u64>,
    /// Exit (with 0) after N events.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_events: Option<u64>,
}

impl WatchFlags {
    /// For `ls`: these flags only mean something with `--watch` (a usage error otherwise).
    pub fn check(&self, watching: bool, path: &[&str]) -> Result<()> {
        let given = if self.since.is_some() {
            Some("--since")
        } else {
            self.max_events.is_some().then_some("--max-events")
        };
        match given {
            Some(flag) if !watching => Err(usage(
                path,
                format!("{flag} only applies to a watch: add --watch (-w)"),
            )),
            _ => Ok(()),
        }
    }

    /// The request's `since_revision` (0 starts with the current objects).
    pub fn since_revision(&self) -> u64 {
        self.since.unwrap_or(0)
    }
}

/// One message of a watch stream, whatever the kind of object.
pub trait Event {
    /// The event type (`EventType` as a number).
    fn event_type(&self) -> i32;
    /// The revision of the change.
    fn revision(&self) -> u64;
    /// The object as the OBJECT column shows it.
    fn object_name(&self) -> String;
    /// The STATE column.
    fn state(&self) -> String;
    /// The object as JSON, `null` when the message carries none.
    fn object_json(&self) -> Value;
    /// The object as template data, `null` when the message carries none.
    fn object_data(&self) -> Value;
}

/// The name, or `uid:<uid>` for the DELETED message of an object whose last state weftd no
/// longer knows (it sends only the uid then).
fn name_or_uid(name: &str, uid: &str) -> String {
    if name.is_empty() && !uid.is_empty() {
        format!("uid:{uid}")
    } else {
        name.to_string()
    }
}

/// Implements [`Event`] for a watch response whose object is in `$field`: `$name` gives the
/// OBJECT column from the object, `$json` its JSON. The type, revision and state are read the
/// same way for every kind.
macro_rules! event {
    ($($resp:ty => $field:ident, $name:expr);* $(;)?) => {$(
        impl Event for $resp {
            fn event_type(&self) -> i32 {
                self.r#type
            }
            fn revision(&self) -> u64 {
                self.revision
            }
            fn object_name(&self) -> String {
                self.$field.as_ref().map($name).unwrap_or_default()
            }
            fn state(&self) -> String {
                table::state(self.$field.as_ref().and_then(|o| o.status.as_ref()))
            }
            fn object_json(&self) -> Value {
                self.$field.as_ref().map_or(Value::Null, Shown::json)
            }
            fn object_data(&self) -> Value {
                self.$field.as_ref().map_or(Value::Null, Shown::data)
            }
        }
    )*};
}

event!(
    WatchNamespacesResponse => namespace, |n: &Namespace| name_or_uid(&n.name, &n.uid);
    WatchLinksResponse => link, link_name;
    WatchNetworksResponse => network, |n: &Network| name_or_uid(&n.name, &n.uid);
);

/// A link's OBJECT column: `NAMESPACE/NAME` (`(host)/NAME` in the host namespace), or
/// `uid:<uid>` when weftd sent only the uid of a deleted link.
fn link_name(l: &Link) -> String {
    if l.name.is_empty() {
        name_or_uid(&l.name, &l.uid)
    } else {
        format!("{}/{}", table::ns_name(&l.namespace), l.name)
    }
}

/// Width of the TYPE column: the widest type, `MODIFIED`, and two spaces.
const TYPE_WIDTH: usize = 10;

/// Turns events into lines, keeping the table's columns as wide as the widest cell so far.
pub struct Printer<'a> {
    /// Table, JSON lines or a template.
    shape: &'a Shape,
    /// The widest OBJECT cell printed so far; later lines pad to it.
    name_width: usize,
    /// The widest STATE cell printed so far.
    state_width: usize,
}

impl<'a> Printer<'a> {
    /// A printer for `shape`.
    pub fn new(shape: &'a Shape) -> Self {
        Printer {
            shape,
            name_width: 0,
            state_width: 0,
        }
    }

    /// The line for one event, with its newline.
    pub fn line(&mut self, ev: &impl Event) -> Result<String> {
        Ok(match self.shape {
            Shape::Template(t) => {
                let v = json!({
                    "Type": format::event_type(ev.event_type()),
                    "Object": ev.object_data(),
                    "Revision": ev.revision(),
                });
                format::render_each(t, &[v])?
            }
            Shape::Json | Shape::Docker => {
                let v = json!({
                    "type": format::event_type(ev.event_type()),
                    "object": ev.object_json(),
                    "revision": ev.revision(),
                });
                let mut s = serde_json::to_string(&v).unwrap_or_else(|_| "null".into());
                s.push('\n');
                s
            }
            Shape::Table => {
                let ty = format::event_type_name(ev.event_type())
                    .map_or_else(|| ev.event_type().to_string(), str::to_string);
                let dash = |s: String| if s.is_empty() { "-".to_string() } else { s };
                let name = dash(ev.object_name());
                let state = dash(ev.state());
                self.name_width = self.name_width.max(name.chars().count());
                self.state_width = self.state_width.max(state.chars().count());
                format!(
                    "{ty:<tw$}{name:<nw$}   {state:<sw$}   rev {}\n",
                    ev.revision(),
                    tw = TYPE_WIDTH,
                    nw = self.name_width,
                    sw = self.state_width,
                )
            }
        })
    }
}

/// Runs a watch: `start` opens the stream (`what` names it in errors, e.g. `watch
/// namespaces`), `keep` drops events the CLI filters itself (docker's `name=` filter), and
/// every other event is printed as it arrives.
///
/// It returns `Ok` when weftd ends the stream, after `--max-events`, or when stdout is closed;
/// a stream that breaks is an error naming the last revision printed, so the user can resume
/// with `--since` without missing or repeating an event.
pub async fn run<T, F, Fut>(
    ctx: &Ctx,
    what: &str,
    flags: &WatchFlags,
    keep: impl Fn(&T) -> bool,
    start: F,
) -> Result<()>
where
    T: Event,
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Streaming<T>>, tonic::Status>>,
{
    let what = match flags.since {
        Some(rev) if rev != 0 => format!("{what} from revision {rev}"),
        _ => what.to_string(),
    };
    // No deadline on the request: `ctx.call` bounds only the wait for weftd's first answer
    // (the response headers), never the stream.
    let mut stream = ctx.call(&what, start).await?;
    let mut printer = Printer::new(ctx.shape());
    let mut printed = 0u64;
    let mut last = None;
    while flags.max_events.is_none_or(|max| printed < max) {
        let ev = match stream.message().await {
            Ok(Some(ev)) => ev,
            Ok(None) => return Ok(()),
            Err(status) => {
                let err = ctx.rpc_error(&what, &status, false);
                return Err(match last {
                    Some(rev) => anyhow::anyhow!(
                        "{err:#} (the last event seen was revision {rev}: --since {rev} resumes \
                         after it)"
                    ),
                    None => err,
                });
            }
        };
        if !keep(&ev) {
            continue;
        }
        if !ctx.print_open(&printer.line(&ev)?)? {
            return Ok(());
        }
        printed += 1;
        last = Some(ev.revision());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use weft::v1::{EventType, Link, Namespace, Phase, Status};

    use super::*;

    impl Printer<'_> {
        /// [`Printer::line`] of an event the test knows renders.
        fn line_ok(&mut self, ev: &impl Event) -> String {
            self.line(ev).unwrap()
        }
    }

    /// A namespace event of type `t` for `name` in `phase` (with `msg`) at revision `rev`.
    fn ns_event(t: EventType, name: &str, phase: Phase, msg: &str, rev: u64) -> impl Event {
        WatchNamespacesResponse {
            r#type: t as i32,
            namespace: Some(Namespace {
                name: name.into(),
                uid: format!("uid-{name}"),
                status: Some(Status {
                    phase: phase as i32,
                    observed_generation: 1,
                    message: msg.into(),
                }),
                ..Default::default()
            }),
            revision: rev,
        }
    }

    /// Columns only ever widen: a line is never re-printed, so each is padded to the widest cell
    /// seen before it, and the STATE of a failure carries weftd's message.
    #[test]
    fn table_lines_stay_aligned_as_cells_widen() {
        let mut p = Printer::new(&Shape::Table);
        assert_eq!(
            p.line_ok(&ns_event(
                EventType::Added,
                "ns1",
                Phase::Ready,
                "",
                5591444337264164871
            )),
            "ADDED     ns1   Ready   rev 5591444337264164871\n"
        );
        assert_eq!(
            p.line_ok(&ns_event(
                EventType::Modified,
                "ns10",
                Phase::Pending,
                "",
                7
            )),
            "MODIFIED  ns10   Pending   rev 7\n"
        );
        assert_eq!(
            p.line_ok(&ns_event(EventType::Deleted, "ns1", Phase::Deleting, "", 8)),
            "DELETED   ns1    Deleting   rev 8\n"
        );
        assert_eq!(
            p.line_ok(&ns_event(
                EventType::Modified,
                "a",
                Phase::Failed,
                "boom",
                9
            )),
            "MODIFIED  a      Failed: boom   rev 9\n"
        );
    }

    /// `--format json` prints one compact object per line (`jq -c` style), so that a reader can
    /// parse line by line while the stream is still open.
    #[test]
    fn json_lines_are_one_object_each() {
        let mut p = Printer::new(&Shape::Json);
        let line = p.line_ok(&ns_event(EventType::Added, "ns1", Phase::Ready, "", 5));
        assert!(
            line.ends_with("}\n") && line.matches('\n').count() == 1,
            "{line}"
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["type"], "ADDED");
        assert_eq!(v["revision"], 5);
        assert_eq!(v["object"]["name"], "ns1");
        assert_eq!(v["object"]["status"]["phase"], "PHASE_READY");
        // The same conversion as `inspect --format json`.
        assert_eq!(
            v["object"],
            Shown::json(&Namespace {
                name: "ns1".into(),
                uid: "uid-ns1".into(),
                status: Some(Status {
                    phase: Phase::Ready as i32,
                    observed_generation: 1,
                    message: String::new(),
                }),
                ..Default::default()
            })
        );
    }

    /// `--format TEMPLATE` renders `{Type, Revision, Object}` per event, the object as a
    /// template sees it elsewhere.
    #[test]
    fn template_lines_render_each_event() {
        let t = format::template("{{.Type}} {{.Object.Name}} {{.Object.ID}} {{.Revision}}");
        let shape = Shape::Template(Box::new(t.unwrap()));
        let mut p = Printer::new(&shape);
        assert_eq!(
            p.line_ok(&ns_event(EventType::Added, "ns1", Phase::Ready, "", 5)),
            "ADDED ns1 uid-ns1 5\n"
        );
    }

    /// A link is `NAMESPACE/NAME`; a DELETED event that carries only a uid prints `uid:<uid>`.
    #[test]
    fn links_show_their_namespace_and_tombstones_their_uid() {
        let mut p = Printer::new(&Shape::Table);
        let ev = WatchLinksResponse {
            r#type: EventType::Added as i32,
            link: Some(Link {
                name: "veth0".into(),
                ..Default::default()
            }),
            revision: 1,
        };
        assert_eq!(p.line_ok(&ev), "ADDED     (host)/veth0   Unknown   rev 1\n");
        let gone = WatchLinksResponse {
            r#type: EventType::Deleted as i32,
            link: Some(Link {
                uid: "u1".into(),
                ..Default::default()
            }),
            revision: 2,
        };
        assert_eq!(gone.object_name(), "uid:u1");
        assert_eq!(
            p.line_ok(&gone),
            "DELETED   uid:u1         Unknown   rev 2\n"
        );
    }
}
