//! Discovery, one group version at a time: a failing aggregated API costs only its own types.
//! Plurals, kinds and scope come from the server, never guessed.

use std::collections::BTreeMap;

use gitops_reverser_core::ids::Gvr;
use gitops_reverser_core::io::ApiResource;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use kube::Client;

/// A served resource type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    /// `apiVersion` of its objects.
    pub api_version: String,
    /// Its kind.
    pub kind: String,
    /// Whether its objects live in namespaces.
    pub namespaced: bool,
}

/// What the API server serves that can be listed and watched.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Discovered {
    /// Every listable, watchable resource (no subresources).
    pub resources: BTreeMap<Gvr, Served>,
}

impl Discovered {
    /// The core's view.
    pub fn api_resources(&self) -> Vec<ApiResource> {
        self.resources
            .iter()
            .map(|(gvr, s)| ApiResource {
                gvr: gvr.clone(),
                namespaced: s.namespaced,
                kind: s.kind.clone(),
            })
            .collect()
    }

    /// The collection path of a GVR, over all namespaces.
    pub fn path(gvr: &Gvr) -> String {
        match gvr.group.as_str() {
            "" => format!("/api/{}/{}", gvr.version, gvr.resource),
            g => format!("/apis/{g}/{}/{}", gvr.version, gvr.resource),
        }
    }
}

/// Runs discovery. Group versions that fail are left out and returned with their error, for the
/// log; the rest is still good.
pub async fn discover(client: &Client) -> Result<(Discovered, Vec<String>), kube::Error> {
    let mut out = Discovered::default();
    let mut failures = Vec::new();
    let core = client.list_core_api_versions().await?;
    for v in core.versions {
        match client.list_core_api_resources(&v).await {
            Ok(list) => add(&mut out, "", &v, list),
            Err(e) => failures.push(format!("/api/{v}: {e}")),
        }
    }
    let groups = client.list_api_groups().await?;
    for group in groups.groups {
        for gv in group.versions {
            match client.list_api_group_resources(&gv.group_version).await {
                Ok(list) => add(&mut out, &group.name, &gv.version, list),
                Err(e) => failures.push(format!("{}: {e}", gv.group_version)),
            }
        }
    }
    Ok((out, failures))
}

fn add(out: &mut Discovered, group: &str, version: &str, list: APIResourceList) {
    let api_version = match group {
        "" => version.to_string(),
        g => format!("{g}/{version}"),
    };
    for r in list.resources {
        let verbs = |v: &str| r.verbs.iter().any(|x| x == v);
        if r.name.contains('/') || !verbs("list") || !verbs("watch") {
            continue;
        }
        out.resources.insert(
            Gvr::new(group, version, &r.name),
            Served {
                api_version: api_version.clone(),
                kind: r.kind.clone(),
                namespaced: r.namespaced,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_paths_follow_the_group() {
        assert_eq!(
            Discovered::path(&Gvr::new("", "v1", "configmaps")),
            "/api/v1/configmaps"
        );
        assert_eq!(
            Discovered::path(&Gvr::new("apps", "v1", "deployments")),
            "/apis/apps/v1/deployments"
        );
    }

    #[test]
    fn subresources_and_unwatchable_types_are_left_out() {
        let list: APIResourceList = serde_json::from_value(serde_json::json!({
            "groupVersion": "v1",
            "resources": [
                {"name": "pods", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["list", "watch", "get"]},
                {"name": "pods/status", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get", "patch"]},
                {"name": "bindings", "singularName": "", "namespaced": true, "kind": "Binding", "verbs": ["create"]},
                {"name": "nodes", "singularName": "", "namespaced": false, "kind": "Node", "verbs": ["list", "watch"]}
            ]
        }))
        .unwrap();
        let mut d = Discovered::default();
        add(&mut d, "", "v1", list);
        let names: Vec<_> = d.resources.keys().map(|g| g.resource.clone()).collect();
        assert_eq!(names, ["nodes", "pods"]);
        assert!(!d.resources[&Gvr::new("", "v1", "nodes")].namespaced);
    }
}
