//! Discovery, one group version at a time: a failing aggregated API costs only its own types.
//! Plurals, kinds and scope come from the server, never guessed.

use std::collections::BTreeMap;

use gitops_reverser_core::io::ApiResource;
use gitops_reverser_core::Gvr;
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
    /// Whether a version wildcard selects this version: the group's preferred version when it
    /// serves the resource, else the first version in the group's priority order that does
    /// (kubectl's rule, client-go's `ServerPreferredResources`).
    pub preferred: bool,
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
                preferred: s.preferred,
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
    let mut order: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let groups = client.list_api_groups().await?;
    for group in groups.groups {
        let preferred = group.preferred_version.as_ref().map(|p| p.version.clone());
        // The preferred version first, then the rest in the server's priority order.
        let mut versions: Vec<String> = preferred.into_iter().collect();
        for gv in &group.versions {
            if !versions.contains(&gv.version) {
                versions.push(gv.version.clone());
            }
        }
        for gv in group.versions {
            match client.list_api_group_resources(&gv.group_version).await {
                Ok(list) => add(&mut out, &group.name, &gv.version, list),
                Err(e) => failures.push(format!("{}: {e}", gv.group_version)),
            }
        }
        order.insert(group.name, versions);
    }
    mark_preferred(&mut out, &order);
    Ok((out, failures))
}

/// Marks, for each group and resource, the one version a version wildcard selects: the first of
/// the group's versions in `order` (preferred first) that serves it. The core group has one
/// version; a group missing from `order` keeps its first version in sort order.
fn mark_preferred(out: &mut Discovered, order: &BTreeMap<String, Vec<String>>) {
    let mut chosen: BTreeMap<(String, String), String> = BTreeMap::new();
    for gvr in out.resources.keys() {
        let rank = |v: &str| {
            order
                .get(&gvr.group)
                .and_then(|vs| vs.iter().position(|x| x == v))
                .unwrap_or(usize::MAX)
        };
        let key = (gvr.group.clone(), gvr.resource.clone());
        let better = chosen
            .get(&key)
            .is_none_or(|v| rank(&gvr.version) < rank(v));
        if better {
            chosen.insert(key, gvr.version.clone());
        }
    }
    for (gvr, served) in &mut out.resources {
        served.preferred =
            chosen.get(&(gvr.group.clone(), gvr.resource.clone())) == Some(&gvr.version);
    }
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
                preferred: false,
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

    #[test]
    fn a_wildcard_version_is_the_groups_preferred_one_or_the_first_that_serves_the_type() {
        let served = |namespaced| Served {
            api_version: String::new(),
            kind: String::new(),
            namespaced,
            preferred: false,
        };
        let mut d = Discovered::default();
        for (g, v, r) in [
            ("", "v1", "configmaps"),
            ("batch", "v1", "jobs"),
            ("batch", "v1beta1", "jobs"),
            ("batch", "v1beta1", "cronjobs"),
            ("autoscaling", "v1", "horizontalpodautoscalers"),
            ("autoscaling", "v2beta1", "horizontalpodautoscalers"),
            ("autoscaling", "v2beta2", "horizontalpodautoscalers"),
        ] {
            d.resources.insert(Gvr::new(g, v, r), served(true));
        }
        let order = [
            (
                "batch".to_string(),
                vec!["v1".to_string(), "v1beta1".to_string()],
            ),
            (
                "autoscaling".to_string(),
                ["v1", "v2beta2", "v2beta1"].map(String::from).to_vec(),
            ),
        ]
        .into();
        mark_preferred(&mut d, &order);
        let preferred: Vec<String> = d
            .resources
            .iter()
            .filter(|(_, s)| s.preferred)
            .map(|(g, _)| g.to_string())
            .collect();
        assert_eq!(
            preferred,
            [
                "v1/configmaps",
                "autoscaling/v1/horizontalpodautoscalers",
                "batch/v1/jobs",
                "batch/v1beta1/cronjobs"
            ]
        );
    }
}
