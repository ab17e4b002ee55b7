//! The defaults custom resource types' schemas declare, from the CRD stream, as the core's
//! `Input::SchemaDefaults`: one per served version, sent when it changes, withdrawn when the
//! version or its CRD goes.

use std::collections::{BTreeMap, BTreeSet};

use gitops_reverser_core::io::{Input, WatchEvent};
use gitops_reverser_core::schema_defaults::SchemaDefaults;
use gitops_reverser_core::{Gvr, RawObject};
use serde_json::Value;

/// What was last sent, per type and per CRD.
#[derive(Default)]
pub struct CrdDefaults {
    sent: BTreeMap<Gvr, SchemaDefaults>,
    by_crd: BTreeMap<String, BTreeSet<Gvr>>,
    /// The CRDs a list in progress has shown.
    listing: Option<BTreeSet<String>>,
}

impl CrdDefaults {
    /// The inputs a CRD stream's event calls for.
    pub fn on_event(&mut self, ev: &WatchEvent) -> Vec<Input> {
        let mut out = Vec::new();
        match ev {
            WatchEvent::Init => self.listing = Some(BTreeSet::new()),
            WatchEvent::InitApply(o) | WatchEvent::Apply(o) => {
                let Some((name, versions)) = read(o) else {
                    return out;
                };
                if let Some(l) = &mut self.listing {
                    l.insert(name.clone());
                }
                self.set(name, versions, &mut out);
            }
            WatchEvent::Delete(o) => {
                if let Some((name, _)) = read(o) {
                    self.set(name, Vec::new(), &mut out);
                }
            }
            WatchEvent::InitDone => {
                let listed = self.listing.take().unwrap_or_default();
                let gone: Vec<String> = self
                    .by_crd
                    .keys()
                    .filter(|n| !listed.contains(*n))
                    .cloned()
                    .collect();
                for name in gone {
                    self.set(name, Vec::new(), &mut out);
                }
            }
        }
        out
    }

    fn set(&mut self, crd: String, versions: Vec<(Gvr, SchemaDefaults)>, out: &mut Vec<Input>) {
        let now: BTreeSet<Gvr> = versions.iter().map(|(g, _)| g.clone()).collect();
        for gone in self.by_crd.get(&crd).into_iter().flatten() {
            if !now.contains(gone) && self.sent.remove(gone).is_some() {
                out.push(Input::SchemaDefaults(gone.clone(), None));
            }
        }
        for (gvr, defaults) in versions {
            match (defaults.is_empty(), self.sent.get(&gvr)) {
                (true, Some(_)) => {
                    self.sent.remove(&gvr);
                    out.push(Input::SchemaDefaults(gvr, None));
                }
                (false, sent) if sent != Some(&defaults) => {
                    self.sent.insert(gvr.clone(), defaults.clone());
                    out.push(Input::SchemaDefaults(gvr, Some(defaults)));
                }
                _ => {}
            }
        }
        match now.is_empty() {
            true => self.by_crd.remove(&crd),
            false => self.by_crd.insert(crd, now),
        };
    }
}

/// A CRD's name and the defaults of each version it serves.
fn read(o: &RawObject) -> Option<(String, Vec<(Gvr, SchemaDefaults)>)> {
    let crd: Value = serde_json::from_slice(o.as_bytes()).ok()?;
    let name = crd.pointer("/metadata/name")?.as_str()?.to_string();
    let group = crd.pointer("/spec/group")?.as_str()?;
    let plural = crd.pointer("/spec/names/plural")?.as_str()?;
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(true))
        .filter_map(|v| {
            let version = v.get("name")?.as_str()?;
            let schema = v.pointer("/schema/openAPIV3Schema")?;
            Some((
                Gvr::new(group, version, plural),
                SchemaDefaults::from_schema(schema),
            ))
        })
        .collect();
    Some((name, versions))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crd(defaults: &[(&str, Value)]) -> RawObject {
        let versions: Vec<Value> = defaults
            .iter()
            .map(|(v, d)| json!({"name": v, "served": true, "schema": {"openAPIV3Schema": {"type": "object",
                "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer", "default": d}}}}}}}))
            .collect();
        json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com",
            "names": {"plural": "widgets"}, "versions": versions}})
        .into()
    }

    fn sent(inputs: &[Input]) -> Vec<String> {
        inputs
            .iter()
            .map(|i| match i {
                Input::SchemaDefaults(g, d) => format!("{g} {}", d.as_ref().map_or(0, |d| d.len())),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn each_versions_defaults_are_sent_once_and_withdrawn_with_the_version_or_the_crd() {
        let mut c = CrdDefaults::default();
        assert_eq!(sent(&c.on_event(&WatchEvent::Init)), Vec::<String>::new());
        let two = crd(&[("v1", json!(1)), ("v2", json!(2))]);
        assert_eq!(
            sent(&c.on_event(&WatchEvent::InitApply(two.clone()))),
            ["example.com/v1/widgets 1", "example.com/v2/widgets 1"]
        );
        assert!(c.on_event(&WatchEvent::InitDone).is_empty());
        // Unchanged: nothing; a version gone: withdrawn.
        assert!(c.on_event(&WatchEvent::Apply(two)).is_empty());
        let one = crd(&[("v2", json!(3))]);
        assert_eq!(
            sent(&c.on_event(&WatchEvent::Apply(one))),
            ["example.com/v1/widgets 0", "example.com/v2/widgets 1"]
        );
        // A relist without the CRD withdraws the rest.
        c.on_event(&WatchEvent::Init);
        assert_eq!(
            sent(&c.on_event(&WatchEvent::InitDone)),
            ["example.com/v2/widgets 0"]
        );
    }
}
