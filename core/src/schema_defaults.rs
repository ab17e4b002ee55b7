//! Defaults a CustomResourceDefinition's structural schema declares (`default:`), left out of
//! its objects' files as [`crate::defaults`] leaves out the built-in types'.
//!
//! The API server applies a schema default where the field is absent from an object that is
//! present, also inside a default it just applied; so a value equal to its default goes, deepest
//! first, and an object that held only defaulted values goes when its own default is what is
//! left (`{}`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::json::{Doc, Kind, NodeId, REMOVED};

/// One step of a place in an object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Step {
    /// A member of an object (`properties`).
    Key(String),
    /// Every element of an array (`items`).
    Items,
}

/// The defaults of one version's schema, deepest place first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaDefaults {
    entries: Vec<(Vec<Step>, Value)>,
}

/// How deep a schema is followed: deeper defaults are kept (a file may then hold them).
const SCHEMA_DEPTH_MAX: usize = 32;

impl SchemaDefaults {
    /// The defaults an `openAPIV3Schema` declares, at the places its `properties` and `items`
    /// name. `metadata` is the API server's, never a schema's to default.
    pub fn from_schema(schema: &Value) -> SchemaDefaults {
        let mut entries = Vec::new();
        walk(schema, &mut Vec::new(), &mut entries);
        entries.retain(|(path, _)| path.first() != Some(&Step::Key("metadata".into())));
        // Deepest first, so that an object emptied of its defaults compares with its own.
        entries.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        SchemaDefaults { entries }
    }

    /// Whether the schema declares no default.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many places have a default.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

fn walk(schema: &Value, path: &mut Vec<Step>, out: &mut Vec<(Vec<Step>, Value)>) {
    if path.len() > SCHEMA_DEPTH_MAX {
        return;
    }
    if let Some(d) = schema.get("default") {
        if !path.is_empty() {
            out.push((path.clone(), d.clone()));
        }
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (key, sub) in props {
            path.push(Step::Key(key.clone()));
            walk(sub, path, out);
            path.pop();
        }
    }
    if let Some(items) = schema.get("items") {
        path.push(Step::Items);
        walk(items, path, out);
        path.pop();
    }
}

/// Marks every value equal to its schema default removed.
pub(crate) fn omit(doc: &mut Doc, defaults: &SchemaDefaults) {
    for (path, value) in &defaults.entries {
        let Some((last, parents)) = path.split_last() else {
            continue;
        };
        let Step::Key(key) = last else {
            // An array element's default is never applied to an element that is there.
            continue;
        };
        let mut holders = vec![Doc::ROOT];
        for step in parents {
            holders = holders
                .into_iter()
                .flat_map(|h| match step {
                    Step::Key(k) => doc.get(h, k).into_iter().collect::<Vec<_>>(),
                    Step::Items if doc.kind(h) == Kind::Array => doc.children(h).collect(),
                    Step::Items => Vec::new(),
                })
                .collect();
        }
        for holder in holders {
            if doc.kind(holder) != Kind::Object {
                continue;
            }
            if let Some(v) = doc.get(holder, key) {
                if equals(doc, v, value) {
                    doc.mark_member(holder, v, REMOVED);
                }
            }
        }
    }
}

/// Whether node `id`, as sanitization left it, is the JSON value `v`.
fn equals(doc: &Doc, id: NodeId, v: &Value) -> bool {
    match v {
        Value::Null => doc.kind(id) == Kind::Null,
        Value::Bool(b) => doc.kind(id) == Kind::Bool && doc.is_true(id) == *b,
        Value::Number(n) => {
            doc.kind(id) == Kind::Number
                && (doc.raw(id) == n.to_string().as_bytes()
                    || std::str::from_utf8(doc.raw(id))
                        .ok()
                        .and_then(|t| t.parse::<f64>().ok())
                        .zip(n.as_f64())
                        .is_some_and(|(a, b)| a == b))
        }
        Value::String(s) => doc.str_is(id, s),
        Value::Array(items) => {
            doc.kind(id) == Kind::Array
                && doc.children(id).filter(|&c| !doc.has(c, REMOVED)).count() == items.len()
                && doc
                    .children(id)
                    .filter(|&c| !doc.has(c, REMOVED))
                    .zip(items)
                    .all(|(c, i)| equals(doc, c, i))
        }
        Value::Object(members) => {
            doc.kind(id) == Kind::Object
                && doc.children(id).filter(|&c| !doc.has(c, REMOVED)).count() == members.len()
                && members
                    .iter()
                    .all(|(k, m)| doc.get(id, k).is_some_and(|c| equals(doc, c, m)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "metadata": {"type": "object", "properties": {"name": {"type": "string", "default": "x"}}},
            "spec": {"type": "object", "properties": {
                "size": {"type": "integer", "default": 1},
                "mode": {"type": "string", "default": "auto"},
                "ratio": {"type": "number", "default": 0.5},
                "tuning": {"type": "object", "default": {}, "properties": {
                    "level": {"type": "integer", "default": 3},
                    "tags": {"type": "array", "default": ["a"], "items": {"type": "string"}}}},
                "ports": {"type": "array", "items": {"type": "object", "properties": {
                    "protocol": {"type": "string", "default": "TCP"}, "port": {"type": "integer"}}}}}}}})
    }

    fn file(v: Value) -> Value {
        let defaults = SchemaDefaults::from_schema(&schema());
        let json = serde_json::to_vec(&v).unwrap();
        let mut doc = Doc::parse(&json).unwrap();
        omit(&mut doc, &defaults);
        let mut out = Vec::new();
        crate::canonical::write_canonical(&doc, &mut out, &mut Vec::new());
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn the_schemas_defaults_are_read_at_their_places_and_never_in_metadata() {
        let d = SchemaDefaults::from_schema(&schema());
        assert_eq!(d.len(), 7);
        assert_eq!(d.entries[0].0.len(), 4, "deepest first: {:?}", d.entries);
    }

    #[test]
    fn values_equal_to_their_defaults_go_deepest_first_and_others_stay() {
        let out = file(
            json!({"metadata": {"name": "x"}, "spec": {"size": 1, "mode": "manual", "ratio": 0.50,
            "tuning": {"level": 3, "tags": ["a"]}, "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}}),
        );
        assert_eq!(
            out,
            json!({"metadata": {"name": "x"}, "spec": {"mode": "manual",
            "ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]}})
        );
        let out = file(json!({"spec": {"size": 2, "tuning": {"level": 4, "tags": []}}}));
        assert_eq!(
            out,
            json!({"spec": {"size": 2, "tuning": {"level": 4, "tags": []}}})
        );
    }
}
