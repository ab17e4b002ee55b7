//! Ingestion: one admission or watch input through routing, attribution and enqueue, and
//! the stream bookkeeping around it (namespaces, resyncs).

use super::*;

/// One object as a stream delivers it.
#[derive(Clone, Copy)]
pub(super) struct ObjectEvent<'a> {
    /// When it arrived.
    pub(super) now: Now,
    pub(super) gvr: &'a Gvr,
    /// The stream's type id.
    pub(super) gid: u16,
    pub(super) obj: &'a RawObject,
    /// A `DELETED` event.
    pub(super) deleted: bool,
    /// From a list (`Init…`), not from the watch.
    pub(super) initial: bool,
}

/// What one object's event changes, once read and attributed.
struct Change {
    op: Operation,
    /// The file to write; `None` for a deletion.
    file: Option<FileBody>,
    hash: u64,
    bytes: usize,
    /// The user found for it.
    author: Option<Arc<str>>,
    /// Written without an author, from a list: a `[RESYNC]` commit's.
    resync: bool,
}

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

/// What [`Core::handle_doc`] made of an object.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Read {
    /// Handled.
    Done,
    /// Not handled: it has no `apiVersion`/`kind`, and discovery knows its kind.
    Untyped,
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

/// Where one routed write goes, with what [`Enqueue::write`] needs besides the branch: borrowed
/// field by field from the core, so that the watch path looks each map up once.
pub(super) struct Enqueue<'a> {
    dest: &'a Destination,
    listed: bool,
    now: Now,
    wake: &'a mut BTreeSet<BranchKey>,
    branch_key: &'a BranchKey,
}

impl Enqueue<'_> {
    /// Queues a write unless the repo already holds, or the queue already has, that content.
    fn write(
        self,
        b: &mut Branch,
        write: PendingWrite,
        author: Option<Arc<str>>,
        kind: CommitKind,
        resync: bool,
    ) -> bool {
        let listed = self.listed;
        let redundant = |have: Have| match (&write.content, have) {
            (Some(c), Have::Content(h)) => c.hash == h,
            (None, Have::Absent) => true,
            _ => false,
        };
        let queued = b
            .queue
            .latest(write.path_key)
            .map(|c| c.map_or(Have::Absent, Have::Content));
        if queued.is_some_and(redundant) {
            return false;
        }
        // A resync write that replaces the path's only pending one (in the same open resync
        // commit) is judged against the repository too, and where the repository already holds
        // it, the replaced write goes as well (seed 85336: a namespace relabelled there and back
        // before the push, and the listed objects' additions, replaced by removals, became a
        // commit of deletes of files the repository never had).
        let replaces = resync
            && b.queue
                .only_in_open_resync(write.path_key, &self.dest.base_folder);
        if queued.is_some() && !replaces {
            return self.enqueue(b, write, author, kind, resync);
        }
        let have = match b.paths.held(write.path_key) {
            Some(Held {
                content: Some(h), ..
            }) => Have::Content(h),
            // Listed but not yet compared: render once to learn whether it is the same file.
            Some(h) => match &write.content {
                Some(c) if c.file.blob_id() == h.blob => {
                    let known = Held {
                        content: Some(c.hash),
                        blob: h.blob,
                    };
                    b.paths.set_held(write.path_key, Some(known));
                    Have::Content(c.hash)
                }
                _ => Have::Present,
            },
            None if listed => Have::Absent,
            None => Have::Unknown,
        };
        if redundant(have) {
            if replaces {
                b.queue.drop_from_open_resync(write.path_key);
            }
            return false;
        }
        self.enqueue(b, write, author, kind, resync)
    }

    /// Queues a write that changes something.
    fn enqueue(
        self,
        b: &mut Branch,
        write: PendingWrite,
        author: Option<Arc<str>>,
        kind: CommitKind,
        resync: bool,
    ) -> bool {
        let (now, wall) = (self.now.mono_ms, self.now.wall_ms);
        if resync {
            b.queue
                .push_resync(now, wall, &self.dest.base_folder, write);
        } else {
            b.queue.push_event(now, wall, author, kind, write);
        }
        // Count and byte triggers act at once; the time trigger comes with a tick. More than a
        // push pending may also start an early read of folders still listing.
        if b.op.is_none()
            && (b.queue.over_a_push()
                || b.queue
                    .due(now, b.settings.max_commits, b.settings.push_interval_ms))
            && !self.wake.contains(self.branch_key)
        {
            self.wake.insert(self.branch_key.clone());
        }
        true
    }
}

pub(super) fn namespaces_gvr() -> Gvr {
    Gvr::new("", "v1", "namespaces")
}

/// The deletion state an object is left in by an event: `prev` is what the watch knew of this
/// very object (same uid), `being_deleted` whether the event carries `deletionTimestamp`.
pub(super) fn terminating_after(
    prev: Option<LiveEntry>,
    being_deleted: bool,
    initial: bool,
    content: u64,
) -> Terminating {
    match prev {
        _ if !being_deleted => Terminating::No,
        Some(p) if p.terminating() != Terminating::No => p.terminating(),
        // Seen live just before it began: that version is the one the DELETE was admitted on.
        Some(p) if !initial => Terminating::Since {
            rv: p.rv,
            content: p.content,
        },
        // It began in a gap the watch did not see (a relist), or before the watch knew it.
        _ => Terminating::SinceUnseen { content },
    }
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
        rules: TypeRules,
    ) -> Result<AdmissionDigest, JsonError> {
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
            AdmissionDigest {
                hash: out.finish(doc).0,
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
        let rules = TypeRules::of(&req.gvr);
        let digested = self.digest_admission(primary, rules).and_then(|d| {
            let old = old.map(|o| self.digest_admission(o, rules)).transpose()?;
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
        let current_rv = self
            .gvr_ids
            .get(&req.gvr)
            .and_then(|&gid| self.live[gid as usize].get(ident))
            .map(|e| e.rv);
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
                for d in self.dests.values_mut().filter(|d| d.gate.contains(&gid)) {
                    let needed = d.awaiting.entry(gid).or_insert(epoch);
                    *needed = (*needed).max(epoch);
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
                let mut fed = BTreeSet::new();
                for d in self.dests.values_mut().filter(|d| d.gate.contains(&gid)) {
                    fed.insert(d.branch.clone());
                    let done = d.awaiting.get(&gid).is_some_and(|needed| *needed <= epoch);
                    if done && d.awaiting.remove(&gid).is_some() && d.awaiting.is_empty() {
                        d.want_read = true;
                        self.wake.insert(d.branch.clone());
                    }
                }
                // Objects of this stream not seen by the list are gone.
                for key in fed {
                    if let Some(b) = self.branches.get_mut(&key) {
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
            for d in self.dests.values_mut().filter(|d| d.gate.contains(&gid)) {
                let needed = d.awaiting.entry(gid).or_insert(next);
                *needed = (*needed).max(next);
            }
            self.outputs.push_back(Output::Resync(gvr));
        }
    }

    pub(super) fn handle_object(
        &mut self,
        now: Now,
        gvr: Gvr,
        gid: u16,
        obj: &RawObject,
        deleted: bool,
        initial: bool,
    ) {
        self.counters.events_received_total += 1;
        let mut digester = std::mem::take(&mut self.digester);
        let ev = ObjectEvent {
            now,
            gvr: &gvr,
            gid,
            obj,
            deleted,
            initial,
        };
        let mut read = digester.with_doc(obj.as_bytes(), |doc, out| self.handle_doc(ev, doc, out));
        // A list item without `apiVersion`/`kind` (as the API server lists) gets them from
        // discovery, so its file, its content hash and its joins are those of a watch event's.
        if let (Ok(Read::Untyped), Some(kind)) = (&read, self.kinds.get(&gvr)) {
            let typed = obj.with_type_meta(&gvr.api_version(), kind);
            let ev = ObjectEvent { obj: &typed, ..ev };
            read = digester.with_doc(typed.as_bytes(), |doc, out| self.handle_doc(ev, doc, out));
        }
        self.digester = digester;
        if let Err(e) = read {
            self.refuse(format!("{gvr}"), format!("watch object not read: {e}"));
        }
    }

    /// One object through the pipeline's steps: its identity read, routed to the rules'
    /// destinations, sanitized and hashed, its live entry updated, its author found, and its file
    /// (or its removal) queued on each destination's branch.
    #[must_use]
    pub(super) fn handle_doc(
        &mut self,
        ev: ObjectEvent<'_>,
        doc: &mut Doc,
        out: &mut DigestOut,
    ) -> Read {
        let ObjectEvent {
            now,
            gvr,
            gid,
            obj,
            deleted,
            initial,
        } = ev;
        if self.kinds.contains_key(gvr) {
            let [api_version, kind] = doc.lookup(Doc::ROOT, ["apiVersion", "kind"]);
            if api_version.is_none() && kind.is_none() {
                return Read::Untyped;
            }
        }
        // Read by borrow: an event that changes nothing (status churn) allocates nothing here.
        let mut routed = std::mem::take(&mut self.routed);
        let [name, namespace, rv, uid, labels, deletion] = doc
            .get(Doc::ROOT, "metadata")
            .map(|m| {
                doc.lookup(
                    m,
                    [
                        "name",
                        "namespace",
                        "resourceVersion",
                        "uid",
                        "labels",
                        "deletionTimestamp",
                    ],
                )
            })
            .unwrap_or_default();
        let being_deleted = deletion.is_some_and(|d| doc.kind(d) != Kind::Null);
        let text = |node: Option<_>| node.and_then(|n| doc.str(n));
        let head = text(name).map(|name| {
            let r = ResourceRef {
                gvr,
                namespace: text(namespace),
                name,
            };
            let valid = r.validate();
            self.ident.clear();
            r.write_identifier(&mut self.ident);
            // Only hashed: read as bytes.
            let bytes = |node: Option<_>| node.and_then(|n| doc.str_raw(n));
            let rv = bytes(rv).map_or(0, tag64);
            let uid = bytes(uid).map_or(0, tag64);
            (valid, rv, uid, r.namespace)
        });
        let Some((valid, rv, uid, namespace)) = head else {
            self.routed = routed;
            self.refuse(
                format!("{gvr}"),
                "watch object without metadata.name".into(),
            );
            return Read::Done;
        };
        if is_namespaces(gvr) {
            let labels_of_namespace: BTreeMap<String, String> = labels
                .filter(|&l| doc.kind(l) == Kind::Object)
                .map(|l| {
                    doc.children(l)
                        .filter_map(|c| {
                            let key = std::str::from_utf8(doc.key(c)).ok()?;
                            Some((key.to_owned(), doc.str(c)?.to_owned()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let epoch = self.live[gid as usize].epoch();
            self.note_namespace(
                text(name).unwrap_or_default(),
                labels_of_namespace,
                deleted,
                epoch,
            );
        }
        if let Err(e) = valid {
            self.routed = routed;
            self.refuse(self.ident.clone(), format!("not written: {e}"));
            return Read::Done;
        }
        let ident = key128(&self.ident);
        let prev = self.live[gid as usize].get(ident).copied();
        let same_object = prev.is_some_and(|p| p.uid == uid);
        let op = match (deleted, same_object) {
            (true, _) => Operation::Delete,
            (false, true) => Operation::Update,
            (false, false) => Operation::Create,
        };
        // Route on the labels as the cluster has them (before sanitization removes tooling labels).
        let labels = DocLabels(doc, labels);
        let facts = ObjectFacts {
            namespace,
            labels: &labels,
            op: (!initial).then_some(op),
        };
        let ns_labels = &self.ns_labels;
        let labelled =
            |sel: &Selector, ns: &str| ns_labels.get(ns).is_some_and(|l| sel.matches_map(l));
        self.rules.route_into(gvr, &facts, labelled, &mut routed);
        // A live change of an operation a rule leaves out (`operations`) leaves that rule's file
        // as it is: neither written nor removed, until a resync brings the folder up to date.
        // So does any change while its namespace's labels are unknown (the namespaces stream is
        // still listing): the namespace selectors' folders wait for the list, whose namespaces
        // each ask for a resync of what those selectors cover.
        let mut held = std::mem::take(&mut self.held);
        held.clear();
        let pending = namespace.is_some_and(|ns| ns_labels.pending(ns));
        if !initial || pending {
            let any = ObjectFacts { op: None, ..facts };
            let maybe = |sel: &Selector, ns: &str| pending || labelled(sel, ns);
            self.rules.route_into(gvr, &any, maybe, &mut held);
        }
        held.retain(|d| routed.binary_search(d).is_err());
        let rules = TypeRules::of(gvr);
        sanitize(doc, rules);
        let (hash, bytes) = out.finish(doc);
        let terminating =
            terminating_after(prev.filter(|_| same_object), being_deleted, initial, hash);
        let live = &mut self.live[gid as usize];
        if deleted {
            live.remove(ident);
        } else {
            live.set(ident, rv, uid, hash, terminating);
        }
        if !deleted && !initial && same_object && prev.is_some_and(|p| p.content == hash) {
            // Status churn, managedFields-only writes, resync duplicates: nothing to write. The
            // version before is history all the same (see `note_replaced` below).
            if let Some(p) = prev.filter(|p| p.rv != rv && p.terminating() == terminating) {
                self.attributor.note_replaced(now.mono_ms, ident, p.rv);
            }
            self.counters.watch_duplicates_skipped_total += 1;
            self.routed = routed;
            self.held = held;
            return Read::Done;
        }
        // The final event of a deletion that finalizers held: the DELETE was admitted against the
        // version before the deletion began, not the `deletionTimestamp` one the watch showed last.
        // Its content too: users may have edited it since, and the DELETE's record holds the
        // content of the version it was admitted on.
        let (base_rv, base_certain, joined_content) = match prev.filter(|_| same_object) {
            Some(p) if deleted => match p.terminating() {
                Terminating::No => (Some(p.rv), !initial, hash),
                Terminating::Since { rv, content } => (Some(rv), !initial, content),
                // Seen first in a list (seed 83539: the API server's delete of a CRD's object,
                // shown by a relist, then edited by alice before the finalizer went).
                Terminating::SinceUnseen { content } => (Some(p.rv), false, content),
            },
            Some(p) => (Some(p.rv), !initial, hash),
            None => (None, !initial && prev.is_some(), hash),
        };
        let key = CorrKey {
            ident,
            op,
            content: joined_content,
        };
        // A relist that shows a version this core already saw is no new change: it has no author
        // to find, and taking a record here would steal one that arrived late for a past write.
        // Nor is a new version with the content already seen (writes in the gap that changed
        // nothing a file holds, or changed it back): noted as a change seen without an author,
        // it made every identical write's record within the TTL look late, each such write
        // noted again in turn (seed 2095: carol's annotation-only update, listed after a gap,
        // cost the deployer and then alice their authorship of later changes to that content).
        let seen_before =
            initial && same_object && prev.is_some_and(|p| p.rv == rv || p.content == hash);
        let attribution = if seen_before {
            Attribution::Miss
        } else {
            self.attributor
                .attribute(now.mono_ms, key, rv, uid, base_rv, base_certain)
        };
        // The version before this one is history now: a record made on it, stored or still to
        // come, can explain no later change (seeds 64343572 and 7001982: such a record, kept,
        // named its user for someone else's identical change that a relist showed later). Also
        // when a list shows the replacement: a list is no older than the watch before it.
        // Not the version a deletion begins from: the DELETE was made on it, and its final
        // event is still to come.
        if let Some(p) = prev.filter(|_| same_object) {
            let begins_deletion =
                p.terminating() == Terminating::No && terminating != Terminating::No;
            if p.rv != rv && !begins_deletion {
                self.attributor.note_replaced(now.mono_ms, ident, p.rv);
            }
            if let (true, Terminating::Since { rv: since, .. }) = (deleted, p.terminating()) {
                self.attributor.note_replaced(now.mono_ms, ident, since);
            }
        }
        if initial && !deleted && !prev.is_some_and(|p| same_object && p.rv == rv) {
            self.attributor.retire_listed(now.mono_ms, ident, uid, hash);
        }
        let author = attribution.user().cloned();
        if rules.is_secret() && self.config.secret_policy == SecretPolicy::Exclude {
            self.routed = routed;
            self.held = held;
            return Read::Done;
        }
        if bytes > OBJECT_BYTES_MAX && !deleted {
            self.routed = routed;
            self.held = held;
            self.refuse(
                self.ident.clone(),
                format!(
                    "sanitized object is {bytes} bytes; at most {OBJECT_BYTES_MAX} are written"
                ),
            );
            return Read::Done;
        }
        // The file is the executor's to render (see `FileBody`): the object's text is shared.
        let change = Change {
            op,
            file: (!deleted).then(|| FileBody::Object(obj.clone(), rules)),
            hash,
            bytes,
            author: author.clone(),
            resync: initial && attribution.user().is_none(),
        };
        let queued = self.enqueue_change(now, gvr, gid, &routed, &held, change);
        self.routed = routed;
        self.held = held;
        // A live change nobody was found for is noted whether or not a destination took it: its
        // admission may still come (the webhook's path is slower), and kept, that record would
        // name the author of the next same-content creation. A relist's object is noted only if it
        // was written (it may be old news, not a change), and so is the delete of an object we did
        // not know (a duplicate event): noted, it would make a later genuine record look late.
        // Not after an ambiguous join: its admissions are here already, and noted as missed, the
        // change would make a later identical write's own record look late (found with racing
        // writes: carol lost a race to bob, then made bob's change herself within the TTL, and
        // her record was dropped as late).
        let live_change = !initial && (!deleted || prev.is_some());
        let ambiguous = attribution == Attribution::Ambiguous;
        if author.is_none() && !seen_before && !ambiguous && (queued || live_change) {
            let uid = (uid != 0).then_some(uid);
            self.attributor.note_missed(now.mono_ms, key, uid);
            // A listed object this core did not know: its version was made by a CREATE or by
            // an UPDATE, which one is unknown, so the late admission of either is late for it
            // (seed 7001982: after a restart, alice's late UPDATE record of the version the
            // first list showed was kept, and 14 s later named her for bob's identical change).
            if initial && !same_object && !deleted {
                let update = CorrKey {
                    op: Operation::Update,
                    ..key
                };
                self.attributor.note_missed(now.mono_ms, update, uid);
            }
        }
        if queued {
            self.counters.events_processed_total += 1;
        } else {
            self.counters.watch_duplicates_skipped_total += 1;
        }
        Read::Done
    }

    /// Queues `change` of the object whose identifier is in `self.ident` on each destination of
    /// its type: its file where a rule selects it (`routed`), its removal where none does any
    /// more, nothing where a rule leaves this change out (`held`). Whether anything was queued.
    fn enqueue_change(
        &mut self,
        now: Now,
        gvr: &Gvr,
        gid: u16,
        routed: &[Arc<Destination>],
        held: &[Arc<Destination>],
        change: Change,
    ) -> bool {
        let Change {
            op,
            file,
            hash,
            bytes,
            author,
            resync,
        } = change;
        let epoch = self.live[gid as usize].epoch();
        let mut queued = false;
        let mut dests = std::mem::take(&mut self.dests_of_gvr);
        dests.extend_from_slice(self.rules.destinations_of_gvr(gvr));
        for dest in dests.drain(..) {
            if held.binary_search(&dest).is_ok() {
                continue;
            }
            let selected = routed.contains(&dest);
            write_file_path(&dest.base_folder, &self.ident, &mut self.path);
            let path_key = key128(&self.path);
            let Some(d) = self.dests.get_mut(&dest) else {
                continue;
            };
            let Some(b) = self.branches.get_mut(&d.branch) else {
                continue;
            };
            let content = match &file {
                Some(file) if selected => {
                    let member = Member {
                        dest: d.id,
                        gid,
                        epoch,
                    };
                    b.paths.add_member(path_key, member);
                    Some(Content {
                        hash,
                        file: file.clone(),
                        bytes,
                    })
                }
                // Deleted, or no longer selected (labels changed): the file goes if it is there.
                _ => {
                    let was_member = b.paths.remove_member(path_key, d.id);
                    if !selected && !was_member {
                        continue;
                    }
                    None
                }
            };
            let write = PendingWrite {
                path: self.path.as_str().into(),
                path_key,
                content,
            };
            let kind = CommitKind::Event {
                op,
                identifier: self.ident.clone(),
            };
            let queue = Enqueue {
                dest: &dest,
                listed: d.listed,
                now,
                wake: &mut self.wake,
                branch_key: &d.branch,
            };
            queued |= queue.write(b, write, author.clone(), kind, resync);
        }
        self.dests_of_gvr = dests;
        queued
    }
}
