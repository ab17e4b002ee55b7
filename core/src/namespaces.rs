//! Namespace labels, as the namespaces stream shows them, for namespace selectors.
//!
//! They are known only while the stream runs: a namespace deleted, re-created or relabelled
//! while nothing watched namespaces sends no event, so labels kept from before would route its
//! objects into folders that no longer select them (seed 209520894: a namespace deleted and
//! re-created `dev` while no rule needed namespaces, and an update of one of its ConfigMaps,
//! seen while the restarted stream was still listing, committed into the `prod` folder). So the
//! labels are forgotten when the stream stops, a list forgets the namespaces it did not show, and
//! until the stream's first list is complete a namespace not yet shown is *pending*: its objects'
//! selection by namespace selectors is unknown, and their files wait.

use std::collections::BTreeMap;

/// Labels of one namespace.
pub(crate) type Labels = BTreeMap<String, String>;

/// The namespaces stream's view of namespace labels.
#[derive(Debug, Default)]
pub(crate) struct NamespaceLabels {
    /// Each namespace's labels and the list epoch of the stream it was last seen in.
    known: BTreeMap<String, (u32, Labels)>,
    /// Whether the stream has completed a list since it started.
    listed: bool,
}

impl NamespaceLabels {
    /// The namespace's labels, if the stream has shown it.
    pub(crate) fn get(&self, name: &str) -> Option<&Labels> {
        self.known.get(name).map(|(_, l)| l)
    }

    /// Whether the selection of the namespace's objects by namespace selectors is unknown: the
    /// stream has not shown it, and its first list is still running.
    pub(crate) fn pending(&self, name: &str) -> bool {
        !self.listed && !self.known.contains_key(name)
    }

    /// Notes a namespace the stream showed (in list epoch `epoch`), or its deletion. Returns
    /// whether what selectors see of it changed.
    pub(crate) fn note(&mut self, name: &str, labels: Labels, deleted: bool, epoch: u32) -> bool {
        if deleted {
            return self.known.remove(name).is_some();
        }
        let before = self.known.insert(name.into(), (epoch, labels));
        let now = &self.known[name].1;
        before.is_none_or(|(_, l)| l != *now)
    }

    /// A list of epoch `epoch` is complete: namespaces it did not show are gone. Returns their
    /// names, in order.
    pub(crate) fn finish_list(&mut self, epoch: u32) -> Vec<String> {
        self.listed = true;
        let gone: Vec<String> = self
            .known
            .iter()
            .filter(|(_, (e, _))| *e != epoch)
            .map(|(name, _)| name.clone())
            .collect();
        for name in &gone {
            self.known.remove(name);
        }
        gone
    }

    /// The stream stopped: nothing more is known until it lists again.
    pub(crate) fn forget(&mut self) {
        self.known.clear();
        self.listed = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(v: &str) -> Labels {
        [("env".to_string(), v.to_string())].into()
    }

    #[test]
    fn every_namespace_is_pending_until_the_first_list_completes() {
        let mut ns = NamespaceLabels::default();
        assert!(ns.pending("team-a"));
        assert!(ns.note("team-a", env("prod"), false, 1));
        assert!(!ns.pending("team-a"), "shown, so known");
        assert!(ns.pending("team-b"), "not shown yet, list running");
        assert!(ns.finish_list(1).is_empty());
        assert!(
            !ns.pending("team-b"),
            "listed without it: it does not exist"
        );
        assert_eq!(ns.get("team-b"), None);
    }

    #[test]
    fn a_note_reports_a_change_only_when_the_labels_differ() {
        let mut ns = NamespaceLabels::default();
        assert!(ns.note("team-a", env("prod"), false, 1));
        assert!(!ns.note("team-a", env("prod"), false, 2), "same labels");
        assert!(ns.note("team-a", env("dev"), false, 2));
        assert!(ns.note("team-a", Labels::new(), true, 2), "deleted");
        assert!(!ns.note("team-a", Labels::new(), true, 2), "already gone");
    }

    #[test]
    fn a_list_forgets_the_namespaces_it_did_not_show() {
        let mut ns = NamespaceLabels::default();
        ns.note("team-a", env("prod"), false, 1);
        ns.note("team-c", env("prod"), false, 1);
        ns.finish_list(1);
        // A relist after a gap in which team-c was deleted.
        ns.note("team-a", env("prod"), false, 2);
        assert_eq!(ns.finish_list(2), vec!["team-c".to_string()]);
        assert_eq!(ns.get("team-c"), None);
        assert_eq!(ns.get("team-a"), Some(&env("prod")));
    }

    #[test]
    fn a_stopped_stream_knows_nothing_until_it_lists_again() {
        let mut ns = NamespaceLabels::default();
        ns.note("team-c", env("prod"), false, 1);
        ns.finish_list(1);
        ns.forget();
        assert_eq!(
            ns.get("team-c"),
            None,
            "labels from before the stop are stale"
        );
        assert!(ns.pending("team-c"));
    }
}
