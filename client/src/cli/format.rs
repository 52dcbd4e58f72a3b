//! `--format`: how the CLI prints objects, as Docker does it: `table` (the default),
//! `json`, `docker` (`network inspect` only) or a Go template.
//!
//! - `json` is proto3 canonical JSON, exactly what grpcurl prints for the same message: field
//!   names in lowerCamelCase, 64-bit integers as strings, enums by name (`"PHASE_READY"`),
//!   timestamps in RFC 3339, fields holding their default left out. It is not written here:
//!   prost-reflect's serde support serializes a `DynamicMessage` decoded against the file
//!   descriptor set weft-proto embeds (the same one gRPC reflection serves), so a field added
//!   to a `.proto` shows up with no change to the CLI.
//! - A template (anything else, e.g. `'{{.Name}} {{.Bridge}}'`) is rendered by `gotmpl`, a
//!   reimplementation of Go's text/template, once per object, each followed by a newline. Its
//!   data is the object with every field (defaults included, 64-bit integers as numbers) under
//!   Docker-like names: each JSON name with its first letter in capitals (`bridgeName` →
//!   `BridgeName`, `status.phase` → `.Status.Phase`), map keys (labels) left as they are, plus
//!   the aliases of [`aliases`] (`ID`, and for networks `Bridge`, `Driver`, `Created`). A field
//!   that does not exist is an error, not an empty string. Templates get Docker's `json`
//!   function (`{{json .Labels}}`) and `join` (`{{join .DnsServers ","}}`).
//! - `docker`: see [`super::network::docker`].

use std::{collections::HashSet, str::FromStr, sync::OnceLock};

use gotmpl::{MissingKey, Template, TemplateError};
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use serde_json::{Map, Value};
use weft::v1::{
    Endpoint, EventType, GetSystemInfoResponse, Link, Namespace, Network, PlannedChange,
};

/// `--format` as given: which shape the output takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns for lists, `Key: value` for inspect (the default).
    Table,
    /// proto3 canonical JSON, as grpcurl prints it.
    Json,
    /// Docker's `docker network inspect` shape (`network inspect` only).
    Docker,
    /// A Go template, rendered once per object.
    Template(String),
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "table" => Format::Table,
            "json" => Format::Json,
            "docker" => Format::Docker,
            "" => return Err("give table, json, docker or a Go template".into()),
            t if !t.contains("{{") => {
                return Err(format!(
                    "{t:?} is not a format: give table, json, docker or a Go template such as \
                     '{{{{.Name}}}}'"
                ));
            }
            t => Format::Template(t.to_string()),
        })
    }
}

/// Parses a template for `--format`, with Docker's extra functions; a field the data does not
/// have is an error when it is rendered.
pub fn template(src: &str) -> Result<Template, String> {
    Template::new("format")
        .missing_key(MissingKey::Error)
        .func("json", json_func)
        .func("join", join_func)
        .parse(src)
        .map_err(|e| format!("--format: the template does not parse: {e}"))
}

/// Renders `tmpl` over each of `data`, a newline after each.
pub fn render_each(tmpl: &Template, data: &[Value]) -> anyhow::Result<String> {
    let mut out = String::new();
    for d in data {
        let v = gotmpl::to_value(d).map_err(|e| anyhow::anyhow!("--format: {e}"))?;
        let s = tmpl
            .execute_to_string(&v)
            .map_err(|e| anyhow::anyhow!("--format: {e}"))?;
        out.push_str(&s);
        out.push('\n');
    }
    Ok(out)
}

/// `{{json X}}`: X as compact JSON, as Docker's template function.
fn json_func(args: &[gotmpl::Value]) -> gotmpl::Result<gotmpl::Value> {
    let [v] = args else {
        return Err(TemplateError::ArgCount {
            name: "json".into(),
            expected: 1,
            got: args.len(),
        });
    };
    let s = serde_json::to_string(&from_tmpl(v)).map_err(|e| TemplateError::Exec(e.to_string()))?;
    Ok(gotmpl::Value::String(s.into()))
}

/// `{{join LIST SEP}}`: the items of LIST joined by SEP, as Docker's template function.
fn join_func(args: &[gotmpl::Value]) -> gotmpl::Result<gotmpl::Value> {
    let [gotmpl::Value::List(items), gotmpl::Value::String(sep)] = args else {
        return Err(TemplateError::Exec(
            "join takes a list and a separator string".into(),
        ));
    };
    let words: Vec<String> = items
        .iter()
        .map(|i| match i {
            gotmpl::Value::String(s) => s.to_string(),
            other => from_tmpl(other).to_string(),
        })
        .collect();
    Ok(gotmpl::Value::String(words.join(sep).into()))
}

/// A template value back as JSON (for `json`).
fn from_tmpl(v: &gotmpl::Value) -> Value {
    use gotmpl::Value as T;
    match v {
        T::Bool(b) => Value::Bool(*b),
        T::Int(i) => Value::from(*i),
        T::Uint(u) => Value::from(*u),
        T::Float(f) => Value::from(*f),
        T::String(s) => Value::String(s.to_string()),
        T::List(l) => Value::Array(l.iter().map(from_tmpl).collect()),
        T::Map(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.to_string(), from_tmpl(v)))
                .collect(),
        ),
        _ => Value::Null,
    }
}

/// A weft.v1 message the CLI prints: its full proto name, to find its descriptor.
pub trait Proto: prost::Message + Sized {
    /// `weft.v1.Network`...
    const NAME: &'static str;
}

macro_rules! proto {
    ($($t:ty => $name:literal),* $(,)?) => {$(
        impl Proto for $t {
            const NAME: &'static str = $name;
        }
        impl Shown for $t {
            fn json(&self) -> Value {
                to_json(self)
            }
            fn data(&self) -> Value {
                aliases($name, to_data(self))
            }
        }
    )*};
}

proto!(
    Namespace => "weft.v1.Namespace",
    Link => "weft.v1.Link",
    Network => "weft.v1.Network",
    Endpoint => "weft.v1.Endpoint",
    PlannedChange => "weft.v1.PlannedChange",
    GetSystemInfoResponse => "weft.v1.GetSystemInfoResponse",
);

/// Something the CLI prints as one object: its JSON and its template data.
pub trait Shown {
    /// `--format json`: proto3 canonical JSON.
    fn json(&self) -> Value;
    /// The data a `--format` template sees (see the module docs).
    fn data(&self) -> Value;
    /// `--format docker`, for the objects that have Docker's shape.
    fn docker(&self) -> Option<Value> {
        None
    }
}

/// The descriptors of weft.v1, decoded once from the set weft-proto embeds (without source
/// info: comments are not printed, and they were half of the time to load).
fn pool() -> Option<&'static DescriptorPool> {
    static POOL: OnceLock<Option<DescriptorPool>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(weft_proto::FILE_DESCRIPTOR_SET_LEAN).ok())
        .as_ref()
}

/// `m` serialized by prost-reflect with `opts`. The descriptor set and the message come from
/// the same build, so decoding cannot fail short of a broken build; `null` then.
fn serialize<M: Proto>(m: &M, opts: &SerializeOptions) -> Value {
    let Some(desc) = pool().and_then(|p| p.get_message_by_name(M::NAME)) else {
        return Value::Null;
    };
    let Ok(dynamic) = DynamicMessage::decode(desc, m.encode_to_vec().as_slice()) else {
        return Value::Null;
    };
    dynamic
        .serialize_with_options(serde_json::value::Serializer, opts)
        .unwrap_or(Value::Null)
}

/// proto3 canonical JSON of `m`, as grpcurl prints it (prost-reflect's default options).
pub fn to_json<M: Proto>(m: &M) -> Value {
    serialize(m, &SerializeOptions::new())
}

/// Every field of `m` under template names: defaults included, 64-bit integers as numbers,
/// first letters in capitals (map keys untouched).
fn to_data<M: Proto>(m: &M) -> Value {
    let opts = SerializeOptions::new()
        .skip_default_fields(false)
        .stringify_64_bit_integers(false);
    capitalize(serialize(m, &opts), map_fields())
}

/// The JSON names of every map field of weft.v1 (`labels`): their keys are data, not names.
fn map_fields() -> &'static HashSet<String> {
    static MAPS: OnceLock<HashSet<String>> = OnceLock::new();
    MAPS.get_or_init(|| {
        pool()
            .map(|p| {
                p.all_messages()
                    .flat_map(|m| m.fields().collect::<Vec<_>>())
                    .filter(|f| f.is_map())
                    .map(|f| f.json_name().to_string())
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// `camelName` → `CamelName`, and `snake_name` → `SnakeName` (for the CLI's own objects).
pub fn title(key: &str) -> String {
    key.split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

/// Capitalizes the keys of every object in `v`, but not the keys of the maps named in `maps`.
pub fn capitalize(v: Value, maps: &HashSet<String>) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::Object(m) if maps.contains(&k) => Value::Object(
                            m.into_iter()
                                .map(|(mk, mv)| (mk, capitalize(mv, maps)))
                                .collect(),
                        ),
                        v => capitalize(v, maps),
                    };
                    (title(&k), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(|v| capitalize(v, maps)).collect()),
        v => v,
    }
}

/// The template data of a JSON object the CLI makes itself (a dry run, `rm`'s `deleted`,
/// `version`): its keys capitalized.
pub fn data_of(v: &Value) -> Value {
    capitalize(v.clone(), &HashSet::new())
}

/// Docker's names for a few fields: `ID` (the uid), and for a network `Bridge` (its bridge
/// name), `Driver` (`bridge`) and `Created` (its create time).
fn aliases(name: &str, mut v: Value) -> Value {
    let Some(o) = v.as_object_mut() else {
        return v;
    };
    let copy = |o: &mut Map<String, Value>, from: &str, to: &str| {
        if let Some(x) = o.get(from).cloned() {
            o.insert(to.into(), x);
        }
    };
    copy(o, "Uid", "ID");
    if name == "weft.v1.Network" {
        copy(o, "BridgeName", "Bridge");
        copy(o, "CreateTime", "Created");
        o.insert("Driver".into(), Value::String("bridge".into()));
    }
    v
}

/// Renders a value as the CLI prints JSON: pretty, with a trailing newline.
pub fn render(value: &Value) -> String {
    let mut s = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into());
    s.push('\n');
    s
}

/// The word for a watch event's type (`ADDED`...), if this CLI knows it.
pub fn event_type_name(value: i32) -> Option<&'static str> {
    EventType::try_from(value)
        .ok()
        .and_then(|t| t.as_str_name().strip_prefix("EVENT_TYPE_"))
}

/// A watch event's type without its prefix (`"ADDED"`), or the bare number for one this CLI
/// does not know.
pub fn event_type(value: i32) -> Value {
    event_type_name(value).map_or_else(|| Value::from(value), Value::from)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use weft::v1::{Bridge, Phase, Status, link::Kind};

    use super::*;

    /// Canonical JSON: lowerCamelCase names, int64 as strings, enums by name, RFC 3339
    /// timestamps, defaults left out, labels as an object.
    #[test]
    fn canonical_json_of_a_namespace() {
        let ns = Namespace {
            name: "ns1".into(),
            labels: HashMap::from([("a_b".into(), "1".into())]),
            generation: 3,
            status: Some(Status {
                phase: Phase::Ready as i32,
                observed_generation: 3,
                message: String::new(),
            }),
            status_path: "/run/netns/ns1".into(),
            create_time: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            ..Default::default()
        };
        assert_eq!(
            ns.json(),
            serde_json::json!({
                "name": "ns1",
                "labels": {"a_b": "1"},
                "generation": "3",
                "status": {"phase": "PHASE_READY", "observedGeneration": "3"},
                "statusPath": "/run/netns/ns1",
                "createTime": "2023-11-14T22:13:20Z",
            })
        );
    }

    /// Template data: every field, capitalized, map keys kept, numbers as numbers, aliases.
    #[test]
    fn template_data_is_docker_like() {
        let n = Network {
            name: "n1".into(),
            bridge_name: "br-n1".into(),
            uid: "u1".into(),
            mtu: 1500,
            labels: HashMap::from([("my.key".into(), "v".into())]),
            ..Default::default()
        };
        let d = n.data();
        assert_eq!(d["Name"], "n1");
        assert_eq!(d["Bridge"], "br-n1");
        assert_eq!(d["BridgeName"], "br-n1");
        assert_eq!(d["ID"], "u1");
        assert_eq!(d["Driver"], "bridge");
        assert_eq!(d["Mtu"], 1500);
        assert_eq!(d["Internal"], false);
        assert_eq!(d["Generation"], 0);
        assert_eq!(d["Labels"]["my.key"], "v");
        let t = template("{{.Name}} {{.Bridge}} {{json .Labels}} {{.Internal}}").unwrap();
        assert_eq!(
            render_each(&t, &[d]).unwrap(),
            "n1 br-n1 {\"my.key\":\"v\"} false\n"
        );
    }

    /// A misspelt field is an error naming it, not an empty string.
    #[test]
    fn unknown_template_fields_fail() {
        let t = template("{{.Nmae}}").unwrap();
        let e = render_each(&t, &[Namespace::default().data()]).unwrap_err();
        assert!(e.to_string().contains("Nmae"), "{e}");
        assert!(template("{{.Name").is_err());
    }

    /// `--format` values: the three words, or something with `{{`.
    #[test]
    fn format_values() {
        assert_eq!("table".parse::<Format>(), Ok(Format::Table));
        assert_eq!("json".parse::<Format>(), Ok(Format::Json));
        assert_eq!("docker".parse::<Format>(), Ok(Format::Docker));
        assert_eq!(
            "{{.Name}}".parse::<Format>(),
            Ok(Format::Template("{{.Name}}".into()))
        );
        assert!(
            "yaml"
                .parse::<Format>()
                .unwrap_err()
                .contains("not a format")
        );
    }

    /// The oneof of a link is its member's name; watch event types drop their prefix.
    #[test]
    fn oneofs_and_event_types() {
        let br = Link {
            name: "br0".into(),
            kind: Some(Kind::Bridge(Bridge {})),
            ..Default::default()
        };
        assert_eq!(br.json()["bridge"], serde_json::json!({}));
        assert_eq!(
            event_type(EventType::Added as i32),
            serde_json::json!("ADDED")
        );
        assert_eq!(event_type(42), serde_json::json!(42));
    }
}
