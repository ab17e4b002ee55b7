//! What a rule's entries select, as discovery describes the API server: the entries that can
//! select nothing (a rule that says Ready while it watches nothing is a silent no-op), and a type
//! selected at two versions (every served version of a type shows the same objects, so one object
//! would get two files).

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{Condition, ResourceSelector};
use crate::ids::Gvr;
use crate::rules::{selector_selects, RuleReach, Served};

/// Why one entry selects nothing: a `Ready`-style reason and a message a user can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EntryProblem {
    /// `WrongScope`, `ResourceNotServed`, `VersionNotServed`, `NothingSelected` or `Forbidden`.
    pub reason: &'static str,
    /// What is wrong and what to change.
    pub message: String,
}

fn spelled(sel: &ResourceSelector) -> String {
    let group = if sel.group.is_empty() {
        "core"
    } else {
        &sel.group
    };
    format!("{group}/{}/{}", sel.version, sel.resource)
}

/// Why `sel`, in a rule of reach `reach`, selects no type the API server serves and lets the
/// operator list; `None` when it selects one. `discovered` is the whole of discovery, `denied`
/// the types whose list was refused, with the API server's message.
pub(crate) fn entry_problem(
    sel: &ResourceSelector,
    reach: &RuleReach,
    discovered: &BTreeMap<Gvr, Served>,
    denied: &BTreeMap<Gvr, String>,
) -> Option<EntryProblem> {
    let matching: Vec<(&Gvr, &Served)> = discovered
        .iter()
        .filter(|(g, s)| selector_selects(sel, g, Some(**s)))
        .collect();
    let in_scope: Vec<&Gvr> = matching
        .iter()
        .filter(|(_, s)| reach.reaches_scope(s.namespaced))
        .map(|(g, _)| *g)
        .collect();
    let what = spelled(sel);
    if let Some((gvr, why)) = in_scope
        .iter()
        .all(|g| denied.contains_key(*g))
        .then(|| in_scope.first().and_then(|g| denied.get_key_value(*g)))
        .flatten()
    {
        return Some(EntryProblem {
            reason: "Forbidden",
            message: format!(
                "{what}: the operator may not list {gvr} ({why}); grant its ServiceAccount get, list \
                 and watch on it (deploy/base/rbac.yaml)"
            ),
        });
    }
    if !in_scope.is_empty() {
        return None;
    }
    if let Some((_, s)) = matching.first() {
        let message = match (reach, s.namespaced) {
            (RuleReach::OwnNamespace(_), _) => format!(
                "{what} is cluster-scoped: a WatchRule sees only its own namespace's objects; \
                 use a ClusterWatchRule entry with scope: Cluster"
            ),
            (RuleReach::ClusterScoped, _) => format!(
                "{what} is namespaced, and this entry has scope: Cluster (the default); \
                 set scope: Namespaced"
            ),
            (RuleReach::Namespaced(_), _) => format!(
                "{what} is cluster-scoped, and this entry has scope: Namespaced; set scope: Cluster"
            ),
        };
        return Some(EntryProblem {
            reason: "WrongScope",
            message,
        });
    }
    let named = sel.group != "*" && sel.resource != "*";
    let versions: BTreeSet<&str> = discovered
        .keys()
        .filter(|g| named && g.group == sel.group && g.resource == sel.resource)
        .map(|g| g.version.as_str())
        .collect();
    Some(if !versions.is_empty() {
        EntryProblem {
            reason: "VersionNotServed",
            message: format!(
                "{what}: version {} is not served; served: {} (or * for the preferred one)",
                sel.version,
                versions.into_iter().collect::<Vec<_>>().join(", ")
            ),
        }
    } else if named {
        EntryProblem {
            reason: "ResourceNotServed",
            message: format!(
                "{what}: the API server does not serve this type (yet); install its CRD, or check \
                 the group and the plural name (kubectl api-resources); it is watched once served"
            ),
        }
    } else {
        EntryProblem {
            reason: "NothingSelected",
            message: format!("{what} matches no served type in this rule's scope"),
        }
    })
}

/// `Ready=False`, `ConflictingVersions`, when `resources` select one type at two versions: one
/// object would get a file per version. Explicit versions conflict whatever discovery says; a
/// version wildcard stands for the version discovery prefers.
pub(crate) fn conflicting_versions(
    resources: &[ResourceSelector],
    discovered: &BTreeMap<Gvr, Served>,
) -> Result<(), Condition> {
    let mut versions: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    for sel in resources {
        if sel.group != "*" && sel.version != "*" && sel.resource != "*" {
            versions
                .entry((&sel.group, &sel.resource))
                .or_default()
                .insert(&sel.version);
        }
        for (g, s) in discovered {
            if selector_selects(sel, g, Some(*s)) {
                versions
                    .entry((&g.group, &g.resource))
                    .or_default()
                    .insert(&g.version);
            }
        }
    }
    match versions.iter().find(|(_, v)| v.len() > 1) {
        None => Ok(()),
        Some(((group, resource), v)) => Err(Condition::not_ready(
            "ConflictingVersions",
            format!(
                "resources select {}/{resource} at versions {}: each object would be written once \
                 per version; name one version, or * for the preferred one",
                if group.is_empty() { "core" } else { group },
                v.iter().copied().collect::<Vec<_>>().join(" and ")
            ),
        )),
    }
}

/// The conditions of a rule that compiled: `Ready` (false with `repo_problem` when its
/// repository is not ready, or when no entry selects anything), and, once discovery is known,
/// `ResourcesResolved`, false with the first problem's reason and every problem in its message.
/// A rule whose entries partly work is `Ready=True` with `ResourcesResolved=False`.
/// Each problem comes with where its entry is in the spec (`resources[1]`).
pub(crate) fn rule_conditions(
    problems: Option<&[(String, EntryProblem)]>,
    entries: usize,
    repo_problem: Option<Condition>,
) -> Vec<Condition> {
    let resolved = problems.map(|problems| match problems.first() {
        None => Condition {
            type_: "ResourcesResolved".into(),
            status: true,
            reason: "AllResolved".into(),
            message: "every entry selects a served type".into(),
        },
        Some((_, first)) => Condition {
            type_: "ResourcesResolved".into(),
            status: false,
            reason: first.reason.into(),
            message: problems
                .iter()
                .map(|(at, p)| format!("{at}: {}", p.message))
                .collect::<Vec<_>>()
                .join("; "),
        },
    });
    let ready = match (repo_problem, &resolved) {
        (Some(c), _) => c,
        (None, Some(r)) if !r.status && problems.is_some_and(|p| p.len() == entries) => {
            Condition::not_ready(
                &r.reason,
                format!("no entry selects anything: {}", r.message),
            )
        }
        _ => Condition::ready(),
    };
    std::iter::once(ready).chain(resolved).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(g: &str, v: &str, r: &str) -> ResourceSelector {
        ResourceSelector {
            group: g.into(),
            version: v.into(),
            resource: r.into(),
        }
    }

    fn discovery() -> BTreeMap<Gvr, Served> {
        let s = |namespaced, preferred| Served {
            namespaced,
            preferred,
        };
        [
            (Gvr::new("", "v1", "configmaps"), s(true, true)),
            (
                Gvr::new("rbac.authorization.k8s.io", "v1", "clusterroles"),
                s(false, true),
            ),
            (
                Gvr::new("autoscaling", "v1", "horizontalpodautoscalers"),
                s(true, true),
            ),
            (
                Gvr::new("autoscaling", "v2beta2", "horizontalpodautoscalers"),
                s(true, false),
            ),
        ]
        .into()
    }

    #[test]
    fn an_entry_of_the_wrong_scope_says_which_scope_to_set() {
        let d = discovery();
        let p = entry_problem(
            &sel("", "v1", "configmaps"),
            &RuleReach::ClusterScoped,
            &d,
            &none(),
        )
        .expect("a problem");
        assert_eq!(p.reason, "WrongScope");
        assert!(p.message.contains("scope: Namespaced"), "{}", p.message);
        let p = entry_problem(
            &sel("rbac.authorization.k8s.io", "*", "clusterroles"),
            &RuleReach::OwnNamespace("team-a".into()),
            &d,
            &none(),
        )
        .expect("a problem");
        assert_eq!(p.reason, "WrongScope");
        assert!(p.message.contains("ClusterWatchRule"), "{}", p.message);
        assert_eq!(
            entry_problem(
                &sel("", "*", "configmaps"),
                &RuleReach::Namespaced(None),
                &d,
                &none()
            ),
            None
        );
    }

    fn none() -> BTreeMap<Gvr, String> {
        BTreeMap::new()
    }

    #[test]
    fn an_entry_whose_every_type_the_operator_may_not_list_says_forbidden() {
        let d = discovery();
        let reach = RuleReach::Namespaced(None);
        let configmaps = Gvr::new("", "v1", "configmaps");
        let denied: BTreeMap<Gvr, String> =
            [(configmaps.clone(), "configmaps is forbidden".to_string())].into();
        let p = entry_problem(&sel("", "v1", "configmaps"), &reach, &d, &denied).unwrap();
        assert_eq!(p.reason, "Forbidden");
        assert!(
            p.message.contains("configmaps is forbidden") && p.message.contains("ServiceAccount"),
            "{}",
            p.message
        );
        // A wildcard that still reaches a type it may list works.
        assert_eq!(
            entry_problem(&sel("*", "*", "*"), &reach, &d, &denied),
            None
        );
        assert_eq!(
            entry_problem(&sel("", "v1", "configmaps"), &reach, &d, &none()),
            None
        );
    }

    #[test]
    fn a_type_or_version_not_served_is_named() {
        let d = discovery();
        let reach = RuleReach::Namespaced(None);
        let p = entry_problem(&sel("example.com", "v1", "widgets"), &reach, &d, &none()).unwrap();
        assert_eq!(p.reason, "ResourceNotServed");
        let p = entry_problem(
            &sel("autoscaling", "v3", "horizontalpodautoscalers"),
            &reach,
            &d,
            &none(),
        )
        .unwrap();
        assert_eq!(p.reason, "VersionNotServed");
        assert!(p.message.contains("v1, v2beta2"), "{}", p.message);
        let p = entry_problem(&sel("example.com", "*", "*"), &reach, &d, &none()).unwrap();
        assert_eq!(p.reason, "NothingSelected");
    }

    #[test]
    fn one_type_at_two_versions_is_refused() {
        let d = discovery();
        let hpa = |v: &str| sel("autoscaling", v, "horizontalpodautoscalers");
        let c = conflicting_versions(&[hpa("v1"), hpa("v2beta2")], &BTreeMap::new()).unwrap_err();
        assert_eq!(c.reason, "ConflictingVersions");
        assert!(c.message.contains("v1 and v2beta2"), "{}", c.message);
        assert!(conflicting_versions(&[hpa("*"), hpa("v2beta2")], &d).is_err());
        assert!(conflicting_versions(&[hpa("*"), hpa("v1")], &d).is_ok());
        assert!(conflicting_versions(&[sel("*", "*", "*")], &d).is_ok());
    }

    #[test]
    fn a_partly_working_rule_is_ready_and_says_which_entry_selects_nothing() {
        let problem = EntryProblem {
            reason: "ResourceNotServed",
            message: "example.com/v1/widgets: not served".into(),
        };
        let partial = rule_conditions(Some(&[("resources[1]".into(), problem.clone())]), 2, None);
        assert!(partial[0].status, "Ready");
        assert_eq!(
            (partial[1].type_.as_str(), partial[1].status),
            ("ResourcesResolved", false)
        );
        assert!(partial[1].message.starts_with("resources[1]: "));
        let none = rule_conditions(Some(&[("resources[0]".into(), problem)]), 1, None);
        assert_eq!(
            (none[0].status, none[0].reason.as_str()),
            (false, "ResourceNotServed")
        );
        let before_discovery = rule_conditions(None, 1, None);
        assert_eq!(before_discovery, [Condition::ready()]);
        let repo = Condition::not_ready("GitRepoConfigNotReady", "CredentialsInvalid: bad key");
        let broken = rule_conditions(Some(&[]), 1, Some(repo.clone()));
        assert_eq!(broken[0], repo);
        assert!(broken[1].status);
    }
}
