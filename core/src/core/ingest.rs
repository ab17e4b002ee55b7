//! Ingestion: one admission or watch input through routing, attribution and enqueue, and
//! the stream bookkeeping around it (namespaces, resyncs).

use super::*;

/// What the core reads off an admission request's object.
pub(super) struct AdmissionDigest {
    /// Content hash after sanitization.
    hash: u64,
    /// Fingerprint of `metadata.resourceVersion`.
    rv: Option<u64>,
    /// Fingerprint of `metadata.uid`.
    uid: Option<u64>,
    /// Being deleted and held by finalizers: a DELETE of it changes nothing.
    held: bool,
}

/// The types among `gvr_ids` whose ids are in `gvrs`, in the map's order.
fn types_of<'a>(
    gvr_ids: &'a BTreeMap<Gvr, u16>,
    gvrs: &'a BTreeSet<u16>,
) -> impl Iterator<Item = &'a Gvr> + 'a {
    gvr_ids
        .iter()
        .filter(|(_, id)| gvrs.contains(id))
        .map(|(g, _)| g)
}

pub(super) fn layout_of<'a>(
    gvr_ids: &BTreeMap<Gvr, u16>,
    gvrs: &BTreeSet<u16>,
    base_folder: &'a str,
) -> impl Fn(&str) -> bool + 'a {
    let prefixes: Vec<(String, usize)> = types_of(gvr_ids, gvrs)
        .map(|g| (g.to_string(), if g.group.is_empty() { 2 } else { 3 }))
        .collect();
    move |path: &str| {
        layout_segments(base_folder, path).is_some_and(|segs| {
            prefixes.iter().any(|(prefix, n)| {
                let rest = segs.len() - n;
                (rest == 1 || rest == 2) && segs[..*n].join("/") == *prefix
            })
        })
    }
}

/// Like [`layout_of`], at any version: the files of `gvrs`' group and resource under another
/// version. When the version a wildcard selects changes (the cluster or a CRD was upgraded), the
/// folder's files of the old version are its orphans, and go in the commit that writes the new
/// version's: one file per object, with no gap and nothing left behind.
pub(super) fn layout_any_version<'a>(
    gvr_ids: &BTreeMap<Gvr, u16>,
    gvrs: &BTreeSet<u16>,
    base_folder: &'a str,
) -> impl Fn(&str) -> bool + 'a {
    let kinds: Vec<(String, String)> = types_of(gvr_ids, gvrs)
        .map(|g| (g.group.clone(), g.resource.clone()))
        .collect();
    // Kubernetes versions: v1, v2beta1, v1alpha3.
    let version_like = |v: &str| {
        v.strip_prefix('v')
            .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
    };
    move |path: &str| {
        layout_segments(base_folder, path).is_some_and(|segs| {
            kinds.iter().any(|(group, resource)| {
                let (n, version) = if group.is_empty() {
                    (2, segs[0])
                } else {
                    (3, segs[1])
                };
                let rest = segs.len() - n;
                (rest == 1 || rest == 2)
                    && (group.is_empty() || segs[0] == group)
                    && segs[n - 1] == resource
                    && version_like(version)
            })
        })
    }
}

pub(super) fn namespaces_gvr() -> Gvr {
    Gvr::new("", "v1", "namespaces")
}

/// Whether `gvr` is the namespaces stream, without building one to compare (every event asks).
pub(super) fn is_namespaces(gvr: &Gvr) -> bool {
    gvr.resource == "namespaces" && gvr.version == "v1" && gvr.group.is_empty()
}

impl Core {
    /// Sanitizes an admission's object: its content hash and the fingerprints of its
    /// `metadata.resourceVersion` and `metadata.uid`.
    pub(super) fn digest_admission(
        &mut self,
        obj: &RawObject,
        gvr: &Gvr,
    ) -> Result<AdmissionDigest, JsonError> {
        let rules = TypeRules::of(gvr);
        let custom = self.schema_defaults.get(gvr).cloned();
        self.digester.with_doc(obj.as_bytes(), |doc, out| {
            let fingerprint = |doc: &Doc, field: &str| {
                doc.path(&["metadata", field])
                    .and_then(|v| doc.str_raw(v))
                    .map(tag64)
            };
            let (rv, uid) = (fingerprint(doc, "resourceVersion"), fingerprint(doc, "uid"));
            let deleting = doc
                .path(&["metadata", "deletionTimestamp"])
                .is_some_and(|d| doc.kind(d) != Kind::Null);
            let finalized = doc
                .path(&["metadata", "finalizers"])
                .is_some_and(|f| doc.children(f).next().is_some());
            sanitize(doc, rules);
            if let Some(d) = &custom {
                crate::schema_defaults::omit(doc, d);
            }
            let hash = out.finish(doc).0;
            AdmissionDigest {
                hash: match rules.is_secret() {
                    true => with_secret_values(doc, hash),
                    false => hash,
                },
                rv,
                uid,
                held: deleting && finalized,
            }
        })
    }

    pub(super) fn refuse(&mut self, subject: String, reason: String) {
        self.counters.refused_total += 1;
        self.outputs.push_back(Output::Refused { subject, reason });
    }

    pub(super) fn handle_admission(&mut self, now: Now, req: AdmissionRequest) {
        let record_id = crate::admission::record_id(&req);
        self.counters.admissions_total += 1;
        if req.dry_run {
            self.attributor.skip_dry_run();
            return;
        }
        if req.sub_resource.is_some() {
            // `status` changes nothing a file holds (status is never written), and `scale`
            // carries a Scale, not the object: its content cannot be joined to the object's
            // event. Kept, such a record could only ever be wrong.
            self.attributor.skip_subresource();
            return;
        }
        if !self.rules.watches(&req.gvr) {
            return;
        }
        let r = ResourceRef {
            gvr: &req.gvr,
            namespace: req.namespace.as_deref(),
            name: &req.name,
        };
        if let Err(e) = r.validate() {
            self.refuse(r.identifier(), format!("admission not recorded: {e}"));
            return;
        }
        let ident = key128(&r.identifier());
        let digests = match req.operation {
            Operation::Create => req.object.as_ref().map(|o| (o, None)),
            Operation::Update => req.object.as_ref().zip(req.old_object.as_ref().map(Some)),
            Operation::Delete => req.old_object.as_ref().map(|o| (o, None)),
        };
        let Some((primary, old)) = digests else {
            self.refuse(
                r.identifier(),
                format!(
                    "admission not recorded: {} without the objects it needs",
                    req.operation
                ),
            );
            return;
        };
        let digested = self.digest_admission(primary, &req.gvr).and_then(|d| {
            let old = old
                .map(|o| self.digest_admission(o, &req.gvr))
                .transpose()?;
            Ok((d, old.map(|o| (o.hash, o.rv))))
        });
        let (primary, old) = match digested {
            Ok(d) => d,
            Err(e) => {
                self.refuse(r.identifier(), format!("admission not recorded: {e}"));
                return;
            }
        };
        let hash = primary.hash;
        if req.operation == Operation::Delete && primary.held {
            // A delete of an object already being deleted, that finalizers still hold, changes
            // nothing: the deletion the watch will show is the first DELETE's. Kept, this record
            // would make that deletion look like two users' after a relist.
            self.attributor.skip_noop();
            return;
        }
        let (content, base) = match (req.operation, old) {
            (Operation::Create, _) => (hash, None),
            (Operation::Update, Some((old_hash, old_rv))) => {
                if old_hash == hash {
                    // A content no-op (managedFields-only migration, a no-op apply): no watch event
                    // will carry a change for it to explain.
                    self.attributor.skip_noop();
                    return;
                }
                (hash, old_rv)
            }
            // DELETE's object is the old one: its version is the base. (An UPDATE always has
            // its old object's digest: `digests` required both.)
            (Operation::Delete, _) | (Operation::Update, None) => (hash, primary.rv),
        };
        let key = CorrKey {
            ident,
            op: req.operation,
            content,
        };
        // The version of the object the watch showed last, if this core saw it. (A version
        // names one object: a record made on it is that object's, whatever uid it carries.)
        let known = self
            .gvr_ids
            .get(&req.gvr)
            .and_then(|&gid| self.live[gid as usize].get(ident));
        let current_rv = known.map(|e| e.rv);
        // A CREATE of an object this core already knows, by its uid, came after the creation it
        // records was seen (the webhook was called again, or late): an object is created once,
        // so it explains nothing still to come. Kept and handed to a later core, it named its
        // user for that object's listed content again (seed 2722827: the deployer's second
        // admission of his creation, after someone deleted its file in Git and a failover).
        if req.operation == Operation::Create && known.is_some_and(|e| Some(e.uid) == primary.uid) {
            self.attributor.settle_late(record_id);
            return;
        }
        self.attributor.record(
            now.mono_ms,
            key,
            Record {
                user: req.username.into(),
                base_rv: base,
                // Every operation's: an UPDATE or DELETE record explains only a change of the
                // object it was made for (seeds 40542, 40889: a finalizer's removal, recorded as an
                // UPDATE no event would show, named the author of the next incarnation's update).
                uid: primary.uid,
                content,
                req: record_id,
                seq: 0,
                exact_only: false,
            },
            current_rv,
        );
    }

    pub(super) fn handle_watch(&mut self, now: Now, gvr: Gvr, event: WatchEvent) {
        let is_ns_stream = is_namespaces(&gvr);
        if !self.watched.contains(&gvr) {
            return;
        }
        let gid = self.gvr_id(&gvr);
        match event {
            WatchEvent::Init => {
                let epoch = self.live[gid as usize].begin_list();
                for b in self.branches.values_mut() {
                    for d in b.dests.values_mut().filter(|d| d.gate.contains(&gid)) {
                        let needed = d.awaiting.entry(gid).or_insert(epoch);
                        *needed = (*needed).max(epoch);
                    }
                }
            }
            WatchEvent::InitDone => {
                self.live[gid as usize].finish_list();
                let epoch = self.live[gid as usize].epoch();
                if is_ns_stream {
                    // Namespaces deleted while the stream was down: their objects' selection
                    // changed too.
                    let gone = self.ns_labels.finish_list(epoch);
                    if !gone.is_empty() {
                        self.resync_namespace_selected();
                    }
                }
                for (key, b) in self.branches.iter_mut() {
                    let mut fed = false;
                    for d in b.dests.values_mut().filter(|d| d.gate.contains(&gid)) {
                        fed = true;
                        let done = d.awaiting.get(&gid).is_some_and(|needed| *needed <= epoch);
                        if done && d.awaiting.remove(&gid).is_some() && d.awaiting.is_empty() {
                            d.want_read = true;
                            self.wake.insert(key.clone());
                        }
                    }
                    // Objects of this stream not seen by the list are gone.
                    if fed {
                        b.paths.drop_members(|m| m.gid == gid && m.epoch != epoch);
                    }
                }
            }
            WatchEvent::InitApply(obj) | WatchEvent::Apply(obj) if is_ns_stream => {
                self.handle_object(now, gvr, gid, &obj, false, true);
            }
            WatchEvent::InitApply(obj) => self.handle_object(now, gvr, gid, &obj, false, true),
            WatchEvent::Apply(obj) => self.handle_object(now, gvr, gid, &obj, false, false),
            WatchEvent::Delete(obj) => self.handle_object(now, gvr, gid, &obj, true, false),
        }
    }

    /// Remembers a namespace's labels (for namespace selectors), read from its watch object.
    pub(super) fn note_namespace(&mut self, name: &str, labels: Labels, deleted: bool, epoch: u32) {
        if self.ns_labels.note(name, labels, deleted, epoch) {
            self.resync_namespace_selected();
        }
    }

    /// A namespace's labels changed: objects in it may now match different rules, so what the
    /// namespace selectors cover is listed again.
    pub(super) fn resync_namespace_selected(&mut self) {
        if self.rules.needs_namespace_labels() {
            let gvrs: BTreeSet<Gvr> = self
                .rules
                .rules()
                .iter()
                .filter(|r| matches!(r.reach, RuleReach::Namespaced(Some(_))))
                .flat_map(|r| {
                    self.watched
                        .iter()
                        .filter(|g| {
                            r.selects_gvr(g, self.discovered.get(*g).copied()) && !is_namespaces(g)
                        })
                        .cloned()
                        .collect::<Vec<_>>()
                })
                .collect();
            self.resync(gvrs);
        }
    }

    /// Asks the driver to relist `gvrs`. The folders those streams feed wait for the new lists
    /// before they are read: until then the core's idea of their members is about to change (a
    /// namespace's labels moved objects in or out), and a listing taken now would make live
    /// objects' files look like orphans.
    pub(super) fn resync(&mut self, gvrs: impl IntoIterator<Item = Gvr>) {
        for gvr in gvrs {
            if !self.served(&gvr) {
                // No list of it can come: asked for, it would stay due for ever (and the
                // runtime, waiting for it, would never report ready).
                continue;
            }
            let gid = self.gvr_id(&gvr);
            // The list this asks for, not one already running.
            let next = self.live[gid as usize].epoch() + 1;
            for b in self.branches.values_mut() {
                for d in b.dests.values_mut().filter(|d| d.gate.contains(&gid)) {
                    let needed = d.awaiting.entry(gid).or_insert(next);
                    *needed = (*needed).max(next);
                }
            }
            self.outputs.push_back(Output::Resync(gvr));
        }
    }
}
