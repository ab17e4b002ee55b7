//! What controllers and admins do to the cluster besides the users' writes: namespaces created,
//! relabelled and deleted, the Widget CRD installed, upgraded and deleted.

use super::*;

impl World {
    /// A user creates the passing namespace, relabels one (its objects move in or out of
    /// namespace selectors), or deletes the passing one with everything in it.
    pub(super) fn change_namespace(&mut self) {
        let ns_kind = self.cluster.kind_index("namespaces");
        let user = workload::USERS[self.rng.workload.gen_range(0..workload::USERS.len())];
        let env = ["prod", "dev"][self.rng.workload.gen_range(0..2)];
        let passing = (ns_kind, None, PASSING_NAMESPACE.to_string());
        let live = self.cluster.objects.get(&passing).map(|o| o.body.clone());
        match live {
            None => {
                let body = json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": PASSING_NAMESPACE, "labels": {"env": env,
                        "kubernetes.io/metadata.name": PASSING_NAMESPACE}}});
                self.write(&passing, Operation::Create, user, Some(body));
                if self.cluster.objects.contains_key(&passing) {
                    // Until the watch shows it, the core may route its objects as if it had no
                    // labels, or the labels of the namespace of that name it saw deleted.
                    let before = self.gone_env.remove(PASSING_NAMESPACE).flatten();
                    let entry = self.relabels.entry(PASSING_NAMESPACE.into()).or_default();
                    entry.push((self.now, None));
                    entry.push((self.now, before));
                }
            }
            Some(ns) if workload::terminating(&ns) => {}
            Some(ns) if self.rng.workload.gen_bool(0.4) => self.delete_namespace(ns, user),
            Some(_) => {
                let name = ["team-b", PASSING_NAMESPACE][self.rng.workload.gen_range(0..2)];
                let key = (ns_kind, None, name.to_string());
                let mut body = self.cluster.objects[&key].body.clone();
                let was = self.cluster.ns_env(Some(name)).map(str::to_owned);
                body["metadata"]["labels"]["env"] = json!(env);
                self.write(&key, Operation::Update, user, Some(body));
                if was.as_deref() != Some(env) && self.cluster.ns_env(Some(name)) == Some(env) {
                    self.cluster.touch_namespace(name, self.now);
                    self.note_relabel(name, was.as_deref(), env);
                    self.relabels
                        .entry(name.to_string())
                        .or_default()
                        .push((self.now, was));
                }
            }
        }
    }

    /// Namespace `ns` went from `was` to `env`: each object's last write, and any the watch may
    /// not have shown yet, may show in the folders whose selection of it that changed either way.
    pub(super) fn note_relabel(&mut self, ns: &str, was: Option<&str>, env: &str) {
        for key in self.cluster.in_namespace(ns) {
            let labels = self.cluster.objects[&key]
                .body
                .pointer("/metadata/labels")
                .cloned()
                .unwrap_or_default();
            let under = |ns_env| {
                self.topo.selecting(&Subject {
                    kind: &self.cluster.kinds[key.0],
                    namespace: Some(ns),
                    ns_env,
                    labels: &labels,
                })
            };
            let (before, after) = (under(was), under(Some(env)));
            let dests: Vec<Destination> = before
                .iter()
                .filter(|d| !after.contains(d))
                .chain(after.iter().filter(|d| !before.contains(d)))
                .copied()
                .collect();
            // The last write, and every one the watch may still show after the relabel.
            let id = self.cluster.identifier(&key);
            let since = self
                .now
                .saturating_sub(crate::checks::orphans::WATCH_DELAY_MS_MAX);
            if let Some(history) = self.cluster.history.get_mut(&id) {
                let mut last = true;
                for w in history.iter_mut().rev().filter(|w| !w.rejected) {
                    if !last && w.at_ms < since {
                        break;
                    }
                    w.moved.extend(dests.iter().copied());
                    last = false;
                }
            }
        }
    }

    /// The Widget CRD is created: discovery serves the type, and a stream waiting for it lists.
    pub(super) fn install_crd(&mut self) {
        let kind = self.cluster.kind_index("widgets");
        self.cluster.kinds[kind].served = true;
        self.checkers
            .on_event(Event::AllChanged { now_ms: self.now });
        for input in discovery_inputs(&self.cluster.kinds) {
            self.feed(input);
        }
        let gvr = self.cluster.kinds[kind].gvr.clone();
        if self.streams.contains_key(&gvr) {
            self.relist(gvr);
        }
    }

    /// The Widget CRD is upgraded: `v1` is added and preferred, `v1beta1` still served. The API
    /// server shows every object at `v1` from now on; discovery tells the core, whose version
    /// wildcard moves the files.
    pub(super) fn upgrade_crd(&mut self) {
        let kind = self.cluster.kind_index("widgets");
        let old = format!("{}/", self.cluster.kinds[kind].gvr);
        self.cluster.set_version(kind, "v1", &["v1beta1"]);
        self.upgraded_at_ms = Some(self.now);
        // The objects are the same: their histories go on under the new identifier (the
        // checkers judge the commits at the new path against every write of the object, so that
        // the first one after the upgrade is not taken for its first ever).
        let new = format!("{}/", self.cluster.kinds[kind].gvr);
        self.cluster.carry_history(&old, &new);
        self.checkers
            .on_event(Event::AllChanged { now_ms: self.now });
        for input in discovery_inputs(&self.cluster.kinds) {
            self.feed(input);
        }
    }

    /// The Widget CRD is deleted: no new widgets; the API server deletes every one (through
    /// admission, as a client), and then no longer serves the type.
    pub(super) fn delete_crd(&mut self) {
        let kind = self.cluster.kind_index("widgets");
        self.cluster.kinds[kind].removing = true;
        self.crd_gone(kind);
    }

    /// The CRD's cleanup pass: deletes the objects left (those a finalizer holds go when it
    /// does); once none is left, and the watch has had time to show their deletes, the type goes
    /// from discovery and its streams stop.
    pub(super) fn crd_gone(&mut self, kind: usize) {
        let left: Vec<ObjKey> = self
            .cluster
            .objects
            .keys()
            .filter(|k| k.0 == kind)
            .cloned()
            .collect();
        for key in &left {
            if !workload::terminating(&self.cluster.objects[key].body) {
                self.write(key, Operation::Delete, CRD_CLEANUP, None);
            }
        }
        let gvr = self.cluster.kinds[kind].gvr.clone();
        let drained = self.streams.get(&gvr).is_none_or(|s| s.queue.is_empty());
        if !left.is_empty() || !drained {
            self.at(self.now + 2_500, Ev::CrdGone(kind));
            return;
        }
        self.cluster.kinds[kind].served = false;
        self.cluster.kinds[kind].removing = false;
        self.checkers
            .on_event(Event::AllChanged { now_ms: self.now });
        for input in discovery_inputs(&self.cluster.kinds) {
            self.feed(input);
        }
        if let Some(s) = self.streams.get_mut(&gvr) {
            s.queue.clear();
            s.token += 1;
        }
    }

    /// A namespace's delete: it is marked terminating, and the namespace controller deletes its
    /// objects (through admission, as any client), then the namespace.
    pub(super) fn delete_namespace(&mut self, ns: Value, user: &'static str) {
        let ns_kind = self.cluster.kind_index("namespaces");
        let gvr = self.cluster.kinds[ns_kind].gvr.clone();
        let key = (ns_kind, None, PASSING_NAMESPACE.to_string());
        let req = self.review(
            &key,
            Operation::Delete,
            user,
            None,
            Some(ns.clone()),
            false,
            None,
        );
        self.webhook(req);
        let mut body = ns;
        meta_mut(&mut body).insert("deletionTimestamp".into(), json!("2026-11-26T00:00:02Z"));
        let stored = self.cluster.persist_update(&key, body, self.now);
        self.emit(&gvr, WatchEvent::Apply(stored.into()));
        self.namespace_gone(PASSING_NAMESPACE);
    }

    /// The namespace controller's pass: it deletes what is left in the namespace, and the
    /// namespace itself once nothing is (objects a finalizer holds go first; a refused delete is
    /// tried again on the next pass).
    pub(super) fn namespace_gone(&mut self, ns: &str) {
        let left = self.cluster.in_namespace(ns);
        for key in &left {
            let live = &self.cluster.objects[key].body;
            if !workload::terminating(live) {
                self.write(key, Operation::Delete, NAMESPACE_CONTROLLER, None);
            }
        }
        if !self.cluster.in_namespace(ns).is_empty() {
            self.at(self.now + 2_500, Ev::NamespaceGone(ns.to_string()));
            return;
        }
        let ns_kind = self.cluster.kind_index("namespaces");
        let key = (ns_kind, None, ns.to_string());
        let gvr = self.cluster.kinds[ns_kind].gvr.clone();
        let env = self.cluster.ns_env(Some(ns)).map(str::to_owned);
        self.gone_env.insert(ns.to_string(), env);
        let gone = self.cluster.persist_delete(&key, self.now);
        self.emit(&gvr, WatchEvent::Delete(gone.into()));
    }
}
