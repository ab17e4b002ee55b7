//! The API server model: writes through admission (the webhook's requests, reviewed as the real
//! API server reviews them), watch streams with their delays, relists and deletions that
//! finalizers hold.

use super::*;

impl World {
    /// Starts (or restarts) a stream with a fresh list: whatever was queued is lost.
    pub(super) fn relist(&mut self, gvr: Gvr) {
        let kind = self.cluster.kinds.iter().position(|k| k.gvr == gvr);
        // A type the API server does not serve (yet): the stream waits, and shows nothing.
        let mut events = if kind.is_some_and(|k| !self.cluster.kinds[k].served) {
            Vec::new()
        } else {
            vec![WatchEvent::Init]
        };
        if let Some(k) = kind.filter(|_| !events.is_empty()) {
            events.extend(self.cluster.list(k).into_iter().map(|mut o| {
                if self.behaviours.bare_lists {
                    let m = o.as_object_mut().expect("an object");
                    m.remove("apiVersion");
                    m.remove("kind");
                }
                WatchEvent::InitApply(o.into())
            }));
        }
        if !events.is_empty() {
            events.push(WatchEvent::InitDone);
        }
        let queue: VecDeque<(u64, WatchEvent)> = events
            .into_iter()
            .enumerate()
            .map(|(i, e)| (self.now + 1 + i as u64, e))
            .collect();
        let token = self.streams.get(&gvr).map_or(0, |s| s.token) + 1;
        self.streams.insert(
            gvr.clone(),
            Stream {
                queue,
                paused_until: 0,
                token,
            },
        );
        self.schedule_delivery(&gvr);
    }

    /// Schedules the stream's one outstanding delivery: its front event, when it is due.
    pub(super) fn schedule_delivery(&mut self, gvr: &Gvr) {
        let Some(s) = self.streams.get_mut(gvr) else {
            return;
        };
        let Some(&(ready, _)) = s.queue.front() else {
            return;
        };
        s.token += 1;
        let (t, token) = (ready.max(s.paused_until), s.token);
        self.at(t, Ev::Deliver(gvr.clone(), token));
    }

    pub(super) fn emit(&mut self, gvr: &Gvr, ev: WatchEvent) {
        // The API server persists only after the webhook answered, and the webhook handed the
        // request to the core before answering: an on-time admission always comes first.
        let lat = self.rng.apiserver.gen_range(WEBHOOK_LATENCY_MS_MAX + 1..50);
        let Some(s) = self.streams.get_mut(gvr) else {
            return;
        };
        let behind = s.queue.back().map_or(0, |(t, _)| *t);
        let was_empty = s.queue.is_empty();
        s.queue.push_back(((self.now + lat).max(behind), ev));
        if was_empty {
            self.schedule_delivery(gvr);
        }
    }

    pub(super) fn deliver(&mut self, gvr: Gvr, token: u64) {
        if self.streams.get(&gvr).is_none_or(|s| s.token != token) {
            return;
        }
        if self.healed_at.is_none() {
            if self.inject(Fault::WatchGone) {
                // 410 Gone: the queued events (deletes among them) are never seen; relist.
                self.relist(gvr);
                return;
            }
            if self.inject(Fault::WatchDisconnect) {
                // Mostly a blip; one in ten an outage that spans many writes by different users
                // (within the correlation TTL: a longer one costs attribution, and is a 410 here).
                // Outages do not chain: a stream already behind gets blips only, so no event is
                // ever later than `orphans::WATCH_DELAY_MS_MAX`. Both scale with the TTL drawn
                // (at the default 60 s: blips up to 5 s, outages of 10 to 45 s), never longer.
                let ttl_ms = self
                    .behaviours
                    .correlation_ttl_ms
                    .min(CORRELATION_TTL_MS_DEFAULT);
                let behind = self.streams[&gvr]
                    .queue
                    .front()
                    .is_some_and(|(ready, _)| self.now > ready + 5_000);
                let pause = if self.rng.faults.gen_bool(0.1) && !behind {
                    self.rng.faults.gen_range(ttl_ms / 6..ttl_ms * 3 / 4)
                } else {
                    self.rng.faults.gen_range(100..ttl_ms / 12)
                };
                self.streams.get_mut(&gvr).expect("checked").paused_until = self.now + pause;
                self.schedule_delivery(&gvr);
                return;
            }
        }
        let Some((_, ev)) = self.streams.get_mut(&gvr).and_then(|s| s.queue.pop_front()) else {
            return;
        };
        self.schedule_delivery(&gvr);
        let dup = matches!(ev, WatchEvent::Apply(_) | WatchEvent::Delete(_))
            && self.inject(Fault::WatchDuplicate);
        self.watch_events += 1;
        if dup {
            self.feed(Input::Watch(gvr.clone(), ev.clone()));
        }
        self.feed(Input::Watch(gvr, ev));
    }

    /// The webhook's view of a write: delivered now-ish, late, or never. Returns when it reaches
    /// the core.
    pub(super) fn webhook(&mut self, req: AdmissionRequest) -> Option<u64> {
        if self.inject(Fault::WebhookMissed) {
            return None;
        }
        let late = self.inject(Fault::WebhookLate);
        let lat = if late {
            self.rng.apiserver.gen_range(60..2_000)
        } else {
            self.rng.apiserver.gen_range(0..=WEBHOOK_LATENCY_MS_MAX)
        };
        let due = (self.now + lat).max(self.admissions_due_ms);
        self.admissions_due_ms = due;
        self.at(due, Ev::Admission(self.generation, req));
        Some(due)
    }

    /// The AdmissionReview the API server sends for a write, read by the core's own parser as
    /// the runtime reads it. A create by `generateName` names no object in the request (the
    /// server picked the name; the object carries it); `sub` is the subresource written.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn review(
        &mut self,
        key: &ObjKey,
        op: Operation,
        user: &str,
        object: Option<Value>,
        old: Option<Value>,
        dry_run: bool,
        sub: Option<&str>,
    ) -> AdmissionRequest {
        self.request_seq += 1;
        let k = &self.cluster.kinds[key.0];
        let (group, version) = (k.gvr.group.clone(), k.gvr.version.clone());
        let generated = op == Operation::Create
            && object
                .as_ref()
                .is_some_and(|o| o.pointer("/metadata/generateName").is_some());
        let mut request = json!({
            "uid": format!("req-{}", self.request_seq),
            "kind": {"group": group, "version": version, "kind": k.kind},
            "resource": {"group": group, "version": version, "resource": k.gvr.resource},
            "name": if generated { "" } else { key.2.as_str() },
            "operation": op.as_str(),
            "userInfo": {"username": user, "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": old,
            "dryRun": dry_run,
        });
        if let Some(ns) = &key.1 {
            request["namespace"] = json!(ns);
        }
        if let Some(sub) = sub {
            request["subResource"] = json!(sub);
        }
        let review = json!({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": request});
        let body = serde_json::to_vec(&review).expect("a Value serializes");
        match gitops_reverser_core::admission::parse_review(&body) {
            Ok(req) => req,
            Err(e) => {
                self.checkers.violations.push(format!(
                    "the core's parser refused a review the API server sends: {e}"
                ));
                AdmissionRequest {
                    uid: format!("req-{}", self.request_seq),
                    gvr: k.gvr.clone(),
                    namespace: key.1.clone(),
                    name: key.2.clone(),
                    operation: op,
                    username: user.into(),
                    dry_run,
                    object: None,
                    old_object: None,
                    sub_resource: None,
                }
            }
        }
    }

    /// A user's write through admission; returns whether it was persisted.
    pub(super) fn write(
        &mut self,
        key: &ObjKey,
        op: Operation,
        user: &'static str,
        body: Option<Value>,
    ) {
        let gvr = self.cluster.kinds[key.0].gvr.clone();
        let body = match op {
            Operation::Create => body.map(|b| self.cluster.with_new_uid(b)),
            _ => body,
        };
        let old = self.cluster.objects.get(key).map(|o| o.body.clone());
        if let Some(body) = &body {
            self.checkers.on_event(Event::Written { gvr: &gvr, body });
        }
        if op == Operation::Update
            && chance(&mut self.rng.apiserver, self.behaviours.unchanged_updates)
        {
            // The object as it is: admission sees it, storage finds nothing to change.
            let req = self.review(key, op, user, old.clone(), old.clone(), false, None);
            self.webhook(req);
            return;
        }
        let req = self.review(key, op, user, body.clone(), old.clone(), false, None);
        if chance(&mut self.rng.apiserver, self.behaviours.admit_twice) {
            // The first attempt lost a storage conflict; the retry runs admission again.
            let mut first = req.clone();
            first.uid.push_str("-conflicted");
            self.webhook(first);
        }
        // (No draw at all without racing writes: the histories of those runs stay as they were.)
        let raced = self.behaviours.racing > 0.0
            && op != Operation::Create
            && old.is_some()
            && chance(&mut self.rng.apiserver, self.behaviours.racing);
        let rival = raced.then(|| {
            let others: Vec<&'static str> =
                workload::USERS.into_iter().filter(|u| *u != user).collect();
            let rival = others[self.rng.apiserver.gen_range(0..others.len())];
            let first = self.rng.apiserver.gen_bool(0.5);
            (rival, first)
        });
        let mut rival_admitted = None;
        if let Some((rival, true)) = rival {
            let req = self.review(key, op, rival, body.clone(), old.clone(), false, None);
            rival_admitted = Some(self.webhook(req));
        }
        let admitted = self.webhook(req);
        if let Some((rival, false)) = rival {
            let req = self.review(key, op, rival, body.clone(), old.clone(), false, None);
            rival_admitted = Some(self.webhook(req));
        }
        if let (Some((rival, _)), Some(at)) = (rival, rival_admitted) {
            // The rival's write loses at storage; it leaves what the true one leaves.
            self.note_write(key, rival, op, body.as_ref(), None, true, at);
        }
        match (op, &old) {
            // The name is taken (by an object being deleted): storage refuses the create.
            (Operation::Create, Some(_)) => {
                self.note_write(key, user, op, body.as_ref(), None, true, admitted);
                return;
            }
            // Being deleted already: nothing changes, no event.
            (Operation::Delete, Some(o)) if workload::terminating(o) => return,
            _ => {}
        }
        if self.inject(Fault::RejectedDownstream) {
            self.note_write(key, user, op, body.as_ref(), None, true, admitted);
            return;
        }
        if let (Operation::Delete, Some(o)) = (op, &old) {
            if workload::finalized(o) {
                self.begin_deletion(key, o.clone(), user, admitted);
                return;
            }
        }
        let mut removed = None;
        let (stored, ev) = match op {
            Operation::Create => {
                let b = self
                    .cluster
                    .persist_create(key.clone(), body.expect("object"), self.now);
                (Some(b.clone()), WatchEvent::Apply((&b).into()))
            }
            Operation::Update => {
                let b = self
                    .cluster
                    .persist_update(key, body.expect("object"), self.now);
                (Some(b.clone()), WatchEvent::Apply((&b).into()))
            }
            Operation::Delete => {
                let gone = self.cluster.persist_delete(key, self.now);
                removed = Some(gone.clone());
                (None, WatchEvent::Delete(gone.into()))
            }
        };
        self.note_write(
            key,
            user,
            op,
            stored.as_ref(),
            removed.as_ref(),
            false,
            admitted,
        );
        self.emit(&gvr, ev);
    }

    /// `kubectl scale`: the `scale` subresource. Where the webhook's rules include it, its
    /// admission carries Scale objects, which the core does not record (their content is not the
    /// Deployment's): the change has no admission the core can use, and its commit is the
    /// fallback author's.
    pub(super) fn scale(&mut self, key: &ObjKey, replicas: u64, user: &'static str) {
        let gvr = self.cluster.kinds[key.0].gvr.clone();
        let old = self.cluster.objects[key].body.clone();
        if old.pointer("/spec/replicas") == Some(&json!(replicas)) {
            return;
        }
        if self.behaviours.subresources {
            let scale = |b: &Value, n: &Value| {
                json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
                    "metadata": {"name": key.2, "namespace": key.1,
                        "uid": b["metadata"]["uid"], "resourceVersion": b["metadata"]["resourceVersion"]},
                    "spec": {"replicas": n}})
            };
            let (object, old_scale) = (
                scale(&old, &json!(replicas)),
                scale(&old, &old["spec"]["replicas"]),
            );
            let req = self.review(
                key,
                Operation::Update,
                user,
                Some(object),
                Some(old_scale),
                false,
                Some("scale"),
            );
            self.webhook(req);
        }
        let mut body = old;
        body["spec"]["replicas"] = json!(replicas);
        let stored = self.cluster.persist_update(key, body, self.now);
        self.note_write(
            key,
            user,
            Operation::Update,
            Some(&stored),
            None,
            false,
            None,
        );
        let id = self.cluster.identifier(key);
        if let Some(w) = self.cluster.history.get_mut(&id).and_then(|h| h.last_mut()) {
            w.via_subresource = true;
        }
        self.emit(&gvr, WatchEvent::Apply(stored.into()));
    }

    /// A delete the finalizer holds: the object gets `deletionTimestamp` (a new version, the same
    /// content once sanitized) and stays until the controller removes the finalizer.
    pub(super) fn begin_deletion(
        &mut self,
        key: &ObjKey,
        mut body: Value,
        deleter: &'static str,
        admitted_ms: Option<u64>,
    ) {
        let gvr = self.cluster.kinds[key.0].gvr.clone();
        let meta = meta_mut(&mut body);
        meta.insert("deletionTimestamp".into(), json!("2026-11-26T00:00:01Z"));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        let uid = meta.get("uid").cloned().unwrap_or_default();
        let stored = self.cluster.persist_update(key, body, self.now);
        self.emit(&gvr, WatchEvent::Apply(stored.into()));
        // Well within the correlation TTL, watch outages included: a controller slower than that
        // costs the deleter's attribution (the fallback author), which a strict run would flag.
        let delay = self.rng.apiserver.gen_range(5..2_000);
        // A third of the time someone edits it meanwhile: the API server allows that until the
        // finalizers are gone, and the DELETED event then carries the edited version, not the
        // one the DELETE was admitted on.
        if self.rng.apiserver.gen_bool(0.3) {
            let edit_at = self.now + self.rng.apiserver.gen_range(1..delay);
            self.at(edit_at, Ev::EditTerminating(key.clone(), uid.clone()));
        }
        self.at(
            self.now + delay,
            Ev::Finalize(Finalize {
                key: key.clone(),
                uid,
                deleter,
                admitted_ms,
            }),
        );
    }

    /// A user edits the terminating object `key` (if it is still the one with `uid`).
    pub(super) fn edit_terminating(&mut self, key: &ObjKey, uid: &Value) {
        let Some(old) = self.cluster.objects.get(key).map(|o| o.body.clone()) else {
            return;
        };
        if old.pointer("/metadata/uid") != Some(uid) || !workload::terminating(&old) {
            return;
        }
        let user = workload::USERS[self.rng.workload.gen_range(0..workload::USERS.len())];
        let body = workload::mutate(&mut self.rng.workload, old);
        self.write(key, Operation::Update, user, Some(body));
    }

    /// The controller removes the finalizer (an update through admission); the API server then
    /// deletes the object. The DELETED event carries the last stored version, finalizer included.
    pub(super) fn finalize(&mut self, f: Finalize) {
        let Some(old) = self.cluster.objects.get(&f.key).map(|o| o.body.clone()) else {
            return;
        };
        if old.pointer("/metadata/uid") != Some(&f.uid) || !workload::terminating(&old) {
            return;
        }
        let gvr = self.cluster.kinds[f.key.0].gvr.clone();
        let mut released = old.clone();
        meta_mut(&mut released).remove("finalizers");
        let req = self.review(
            &f.key,
            Operation::Update,
            CONTROLLER,
            Some(released),
            Some(old),
            false,
            None,
        );
        self.webhook(req);
        let gone = self.cluster.persist_delete(&f.key, self.now);
        self.note_write(
            &f.key,
            f.deleter,
            Operation::Delete,
            None,
            Some(&gone),
            false,
            f.admitted_ms,
        );
        self.emit(&gvr, WatchEvent::Delete(gone.into()));
    }

    /// Adds a write to the object's history (what the checkers judge commits against): the file
    /// the object `body` makes (`None` for a delete) and the destinations whose active rules
    /// select it then. `removed` is the object a delete removed (what its watch event shows).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn note_write(
        &mut self,
        key: &ObjKey,
        user: &str,
        op: Operation,
        body: Option<&Value>,
        removed: Option<&Value>,
        rejected: bool,
        admitted_ms: Option<u64>,
    ) {
        let kind = &self.cluster.kinds[key.0];
        let file = body.map(|b| oracle::expected(&kind.gvr, b));
        // A sealed file changes with the Secret's values, which the redacted `file` leaves out.
        let sealed_file = body
            .filter(|_| kind.gvr.resource == "secrets" && self.topo.repos.iter().any(|r| r.sealed))
            .map(|b| oracle::expected_in(&kind.gvr, b, true));
        let ns_env = self.cluster.ns_env(key.1.as_deref());
        let labels_of = |b: &Value| b.pointer("/metadata/labels").cloned().unwrap_or_default();
        let on = |b: &Value, f: &dyn Fn(&Subject<'_>) -> Vec<Destination>| {
            let labels = labels_of(b);
            f(&Subject {
                kind,
                namespace: key.1.as_deref(),
                ns_env,
                labels: &labels,
            })
        };
        let dests = body.map_or_else(Vec::new, |b| on(b, &|s| self.topo.selecting(s)));
        // Its namespace's labels changed just before: the core may see this write first.
        let mut moved = Vec::new();
        if let (Some(b), Some(ns)) = (body, key.1.as_deref()) {
            let recent = self
                .relabels
                .get(ns)
                .into_iter()
                .flatten()
                .filter(|(t, _)| self.now <= t + crate::checks::orphans::WATCH_DELAY_MS_MAX);
            for (_, was) in recent {
                let labels = labels_of(b);
                let before = self.topo.selecting(&Subject {
                    kind,
                    namespace: Some(ns),
                    ns_env: was.as_deref(),
                    labels: &labels,
                });
                moved.extend(
                    before
                        .iter()
                        .filter(|d| !dests.contains(d))
                        .chain(dests.iter().filter(|d| !before.contains(d)))
                        .copied(),
                );
            }
        }
        // The object the watch event shows: the one written, or for a delete the one removed.
        let shown = body.or(removed);
        let held = shown.map_or_else(Vec::new, |b| on(b, &|s| self.topo.holding(s, op)));
        let at_ms = self.now;
        let across_versions = self
            .upgraded_at_ms
            .is_some_and(|u| kind.gvr.resource == "widgets" && admitted_ms.is_some_and(|a| a < u));
        self.cluster.record(
            key,
            WriteRecord {
                at_ms,
                user: user.into(),
                op,
                file,
                sealed_file,
                dests,
                held,
                moved,
                rejected,
                admitted_ms,
                redelivered_ms: None,
                via_subresource: false,
                across_versions,
            },
        );
    }
}
