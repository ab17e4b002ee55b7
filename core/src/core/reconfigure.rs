//! The control plane: rules compiled from the custom resources, destinations and streams
//! reconciled with them, statuses emitted.

use super::*;

impl Core {
    /// What is wrong with each of `resources` against discovery, named `{at}resources[{j}]`.
    fn entry_problems<'a>(
        &'a self,
        resources: &'a [config::ResourceSelector],
        reach: &'a RuleReach,
        at: &'a str,
    ) -> impl Iterator<Item = (String, coverage::EntryProblem)> + 'a {
        resources.iter().enumerate().filter_map(move |(j, sel)| {
            coverage::entry_problem(sel, reach, &self.discovered, &self.denied)
                .map(|p| (format!("{at}resources[{j}]"), p))
        })
    }

    pub(super) fn compile_rules(&self) -> (Vec<CompiledRule>, BTreeMap<CrRef, Vec<Condition>>) {
        let mut rules = Vec::new();
        let mut status = BTreeMap::new();
        for (
            name,
            RepoEntry {
                settings,
                credentials_problem: cred,
                signing,
            },
        ) in &self.repos
        {
            let mut conds = vec![match settings {
                Ok(_) => Condition::ready(),
                Err(c) => c.clone(),
            }];
            if let (Ok(_), Some(problem)) = (settings, cred) {
                // A spec that cannot be used says so first: its credentials may not even apply.
                conds[0] = Condition::not_ready("CredentialsInvalid", problem.clone());
            }
            if let Ok(s) = settings {
                conds.extend(trust_conditions(s, signing.as_ref()));
                if let (Some(SigningVerdict::Invalid(p)), true) = (signing, conds[0].status) {
                    conds[0] = Condition::not_ready(
                        "SigningKeyInvalid",
                        format!("{p}; nothing is pushed unsigned, so nothing is pushed until the key is fixed"),
                    );
                }
            }
            if let Some((reason, message)) = self
                .branches
                .iter()
                .filter(|(k, _)| &k.0 == name)
                .find_map(|(_, b)| b.health.last_error.clone())
            {
                conds.push(Condition {
                    type_: "Pushed".into(),
                    status: false,
                    reason,
                    message,
                });
            }
            status.insert(CrRef::GitRepoConfig(name.clone()), conds);
        }
        for (name, spec) in &self.watch_rules {
            let result = (|| {
                let repo =
                    config::resolve_watch_rule_repo(&name.namespace, &spec.git_repo_config_ref)?;
                let branch = config::validate_destination(
                    self.repos.get(&repo).map(|r| r.settings.as_deref()),
                    &repo,
                    spec.branch.as_deref(),
                    spec.base_folder.as_deref(),
                )?;
                config::validate_resources(&spec.resources)?;
                coverage::conflicting_versions(&spec.resources, &self.discovered)?;
                Ok::<_, Condition>(CompiledRule {
                    destination: Arc::new(Destination::new(
                        repo,
                        &branch,
                        spec.base_folder.as_deref().unwrap_or_default(),
                    )),
                    resources: spec.resources.clone(),
                    operations: config::OpSet::parse(&spec.operations)?,
                    object_selector: config::compile_selector(
                        spec.object_selector.as_ref(),
                        "objectSelector",
                    )?,
                    reach: RuleReach::OwnNamespace(name.namespace.clone()),
                })
            })();
            let conds = match &result {
                Err(c) => vec![c.clone()],
                Ok(rule) => {
                    let problems = self.discovery_seen.then(|| {
                        self.entry_problems(&rule.resources, &rule.reach, "")
                            .collect::<Vec<_>>()
                    });
                    coverage::rule_conditions(
                        problems.as_deref(),
                        rule.resources.len(),
                        self.repo_problem(&rule.destination.repo),
                    )
                }
            };
            status.insert(CrRef::WatchRule(name.clone()), conds);
            rules.extend(result);
        }
        for (name, spec) in &self.cluster_rules {
            let repo = &spec.git_repo_config_ref;
            let result = (|| {
                if let Some(trusted) = &self.config.trusted_namespaces {
                    if !trusted.contains(&repo.namespace) {
                        return Err(Condition::not_ready(
                            "UntrustedNamespace",
                            format!(
                                "GitRepoConfig {repo} is in namespace {}, which the operator does not trust for ClusterWatchRules (trusted: {}); use a GitRepoConfig in a trusted namespace, or have the operator's admin add this one (--cluster-rule-namespaces)",
                                repo.namespace,
                                trusted.iter().cloned().collect::<Vec<_>>().join(", ")
                            ),
                        ));
                    }
                }
                let branch = config::validate_destination(
                    self.repos.get(repo).map(|r| r.settings.as_deref()),
                    repo,
                    spec.branch.as_deref(),
                    spec.base_folder.as_deref(),
                )?;
                if spec.rules.is_empty() {
                    return Err(Condition::not_ready(
                        "NoResources",
                        "rules is empty; add at least one entry with resources",
                    ));
                }
                config::validate_cluster_rule_entries(&spec.rules)?;
                let every: Vec<_> = spec
                    .rules
                    .iter()
                    .flat_map(|r| r.resources.clone())
                    .collect();
                coverage::conflicting_versions(&every, &self.discovered)?;
                let dest = Arc::new(Destination::new(
                    repo.clone(),
                    &branch,
                    spec.base_folder.as_deref().unwrap_or_default(),
                ));
                spec.rules
                    .iter()
                    .map(|r| {
                        config::validate_resources(&r.resources)?;
                        let ns_sel = config::compile_selector(
                            r.namespace_selector.as_ref(),
                            "namespaceSelector",
                        )?;
                        Ok(CompiledRule {
                            destination: dest.clone(),
                            resources: r.resources.clone(),
                            operations: config::OpSet::parse(&r.operations)?,
                            object_selector: config::compile_selector(
                                r.object_selector.as_ref(),
                                "objectSelector",
                            )?,
                            reach: match r.scope {
                                config::RuleScope::Cluster => RuleReach::ClusterScoped,
                                config::RuleScope::Namespaced => RuleReach::Namespaced(ns_sel),
                            },
                        })
                    })
                    .collect::<Result<Vec<_>, Condition>>()
            })();
            let conds = match &result {
                Err(c) => vec![c.clone()],
                Ok(entries) => {
                    let problems = self.discovery_seen.then(|| {
                        entries
                            .iter()
                            .enumerate()
                            .flat_map(|(i, rule)| {
                                let at = format!("rules[{i}].");
                                self.entry_problems(&rule.resources, &rule.reach, &at)
                                    .collect::<Vec<_>>()
                            })
                            .collect::<Vec<_>>()
                    });
                    coverage::rule_conditions(
                        problems.as_deref(),
                        entries.iter().map(|r| r.resources.len()).sum(),
                        self.repo_problem(repo),
                    )
                }
            };
            status.insert(CrRef::ClusterWatchRule(name.clone()), conds);
            rules.extend(result.into_iter().flatten());
        }
        (rules, status)
    }

    /// Why the repository `repo` cannot take pushes although its settings are valid (they are
    /// checked with the rule's destination): its credentials. A rule that writes there says so,
    /// and keeps its streams and folders, so that nothing is lost once they are fixed.
    pub(super) fn repo_problem(&self, repo: &NamespacedName) -> Option<Condition> {
        let problem = &self.repos.get(repo)?.credentials_problem;
        problem.as_ref().map(|p| {
            Condition::not_ready(
                "GitRepoConfigNotReady",
                format!("GitRepoConfig {repo} is not ready: CredentialsInvalid: {p}"),
            )
        })
    }

    /// The id of a watched type (or of one watched before): [`Self::bound_watched`] gave it one.
    pub(super) fn gvr_id(&self, gvr: &Gvr) -> u16 {
        *self
            .gvr_ids
            .get(gvr)
            .expect("every type watched has an id (bound_watched)")
    }

    /// The types to watch among `wanted`, each given an id. Ids are never reused, so only types
    /// that can matter get one: those discovery shows served, those watched before, and before
    /// the first discovery at most [`UNSERVED_TYPES_MAX`] in all. Once discovery is in, a type a
    /// rule names that the API server does not serve waits, id-less, until it is served: made-up
    /// names in a tenant's rules cost nothing, however many there are. A type that cannot get an
    /// id (all 65,536 given out) is left unwatched rather than failing every other.
    pub(super) fn bound_watched(&mut self, wanted: BTreeSet<Gvr>) -> BTreeSet<Gvr> {
        let mut out = BTreeSet::new();
        for g in wanted {
            if !self.gvr_ids.contains_key(&g) {
                let served = self.discovered.contains_key(&g) || is_namespaces(&g);
                // Before the first discovery nothing is known served: every id counts.
                if !served && (self.discovery_seen || self.live.len() >= UNSERVED_TYPES_MAX) {
                    continue;
                }
                let Ok(id) = u16::try_from(self.live.len()) else {
                    continue;
                };
                self.gvr_ids.insert(g.clone(), id);
                self.live.push(StreamLive::default());
            }
            out.insert(g);
        }
        out
    }

    /// Whether the API server serves `gvr` (every type does until discovery has been received).
    pub(super) fn served(&self, gvr: &Gvr) -> bool {
        !self.discovery_seen || self.discovered.contains_key(gvr)
    }

    pub(super) fn reconfigure(&mut self) {
        let (compiled, status) = self.compile_rules();
        let mut rules = RuleStore::new(compiled);
        let mut watched = rules.watched_gvrs(&self.discovered);
        if rules.needs_namespace_labels() {
            watched.insert(namespaces_gvr());
        } else {
            // The stream stops: labels kept from now on would go stale unseen.
            self.ns_labels.forget();
        }
        let watched = self.bound_watched(watched);
        rules.index(&watched, &self.discovered);
        self.rules = rules;
        if watched != self.watched {
            self.watched = watched.clone();
            self.outputs
                .push_back(Output::EnsureWatches(watched.clone()));
        }
        // Destinations: new ones (or ones fed by a changed set of streams) need a seed. They are
        // taken from their branches and go back to them once the branches are reconciled.
        let mut old: BTreeMap<Arc<Destination>, DestState> = self
            .branches
            .values_mut()
            .flat_map(|b| std::mem::take(&mut b.dests))
            .collect();
        let mut new_dests = BTreeMap::new();
        let mut resync = BTreeSet::new();
        for dest in self.rules.destinations() {
            let gvrs: Vec<Gvr> = self
                .rules
                .gvrs_of_destination(&dest)
                .into_iter()
                .cloned()
                .collect();
            let ids: BTreeSet<u16> = gvrs.iter().map(|g| self.gvr_id(g)).collect();
            // A namespace selector routes on namespace labels: until the namespaces are listed,
            // objects would look unselected and their files like orphans.
            let ns_gated = self.rules.rules().iter().any(|r| {
                *r.destination == *dest && matches!(r.reach, RuleReach::Namespaced(Some(_)))
            });
            // The folder waits for the lists of the types the API server serves only: a stream
            // of one it does not (a CRD not installed yet, or deleted) shows nothing, and waiting
            // for it would leave the folder unread and its branch held back. Files of such a
            // type are not taken for orphans meanwhile (`apply_listing` scans served types only):
            // while it cannot be listed, nothing shows they are.
            let mut gate: BTreeSet<u16> = gvrs
                .iter()
                .filter(|g| self.served(g))
                .map(|g| self.gvr_ids[g])
                .collect();
            if let (true, Some(&ns)) = (ns_gated, self.gvr_ids.get(&namespaces_gvr())) {
                gate.insert(ns);
            }
            let branch = (dest.repo.clone(), dest.branch.clone());
            let kept = old.remove(&dest);
            let known = kept.is_some();
            let mut state = match kept {
                Some(state) => state,
                None => {
                    self.next_dest_id += 1;
                    DestState {
                        id: self.next_dest_id,
                        gvrs: BTreeSet::new(),
                        gate: BTreeSet::new(),
                        awaiting: BTreeMap::new(),
                        listed: false,
                        want_read: false,
                    }
                }
            };
            // A new folder is read even if no stream feeds it (a rule whose entries select
            // nothing served yet): unread, it would hold back its whole branch.
            if !known || state.gvrs != ids || state.gate != gate {
                // New, or fed by other streams now: list its streams again and rescan the folder.
                // A stream that no longer feeds it takes its objects and unpushed writes along,
                // as a destination that went does: their files are no longer the folder's, and
                // members whose files a listing does not count would look diverged for ever.
                let dropped: BTreeSet<u16> = state.gvrs.difference(&ids).copied().collect();
                if let (false, Some(b)) = (dropped.is_empty(), self.branches.get_mut(&branch)) {
                    let theirs = layout_of(&self.gvr_ids, &dropped, &dest.base_folder);
                    b.queue.drop_writes(|w| theirs(&w.path));
                    let id = state.id;
                    b.paths
                        .drop_members(|m| m.dest == id && dropped.contains(&m.gid));
                }
                // A type no longer served has no live objects: forgotten, they would look like
                // members whose files went missing, and no list of the type could ever settle
                // that. Their files stay (outside the listed layout) until it is served again.
                let unserved: BTreeSet<u16> = ids.difference(&gate).copied().collect();
                if let (false, Some(b)) = (unserved.is_empty(), self.branches.get_mut(&branch)) {
                    let id = state.id;
                    b.paths
                        .drop_members(|m| m.dest == id && unserved.contains(&m.gid));
                }
                state.gvrs = ids;
                state.awaiting = gate
                    .iter()
                    .map(|g| (*g, self.live[*g as usize].epoch() + 1))
                    .collect();
                state.gate = gate;
                state.listed = false;
                if state.awaiting.is_empty() {
                    // Fed by no stream the API server serves now: no list to wait for, and
                    // unread, the folder would hold back its whole branch.
                    state.want_read = true;
                    self.wake.insert(branch.clone());
                }
                resync.extend(gvrs);
                if ns_gated {
                    resync.insert(namespaces_gvr());
                }
            }
            new_dests.insert(dest, state);
        }
        // A destination that went takes its unpushed writes with it: its folder is no longer
        // kept, and after a conflict nothing could re-read the folder to check them.
        for (gone, d) in &old {
            if let Some(b) = self
                .branches
                .get_mut(&(gone.repo.clone(), gone.branch.clone()))
            {
                let ours = layout_of(&self.gvr_ids, &d.gvrs, &gone.base_folder);
                b.queue.drop_writes(|w| ours(&w.path));
                b.paths.drop_members(|m| m.dest == d.id);
            }
        }
        // Branches follow destinations; one whose destinations went keeps draining its queue, one
        // whose GitRepoConfig went or became invalid cannot push and goes with it.
        let keys: BTreeSet<BranchKey> = new_dests
            .keys()
            .map(|d| (d.repo.clone(), d.branch.clone()))
            .collect();
        // Branches whose sealing changed (recipients, resources, usable or not): their sealed
        // types are listed again, so that every file is written the new way at once (a removed
        // recipient can no longer read any file at the head; history keeps what it could).
        let mut resealed: BTreeMap<BranchKey, Vec<Arc<Sealing>>> = BTreeMap::new();
        // Branches whose `spec.output.defaults` changed: every file is written the new way.
        let mut rewritten: BTreeSet<BranchKey> = BTreeSet::new();
        for key in keys {
            let Some(Ok(settings)) = self.repos.get(&key.0).map(|r| r.settings.clone()) else {
                continue;
            };
            match self.branches.get_mut(&key) {
                Some(b) => {
                    let before = (&b.settings.sealing, &b.settings.sealing_problem);
                    if before != (&settings.sealing, &settings.sealing_problem) {
                        let both = [b.settings.sealing.clone(), settings.sealing.clone()];
                        resealed.insert(key.clone(), both.into_iter().flatten().collect());
                    }
                    if b.settings.keep_defaults != settings.keep_defaults {
                        rewritten.insert(key.clone());
                    }
                    b.settings = settings
                }
                None => {
                    self.branches
                        .insert(key, Branch::new(settings, self.config.push_bounds));
                }
            }
        }
        let repos = &self.repos;
        self.branches
            .retain(|k, _| repos.get(&k.0).is_some_and(|r| r.settings.is_ok()));
        // A destination is valid only while its GitRepoConfig is, so its branch is there.
        self.branch_of.clear();
        for (dest, state) in new_dests {
            let key = (dest.repo.clone(), dest.branch.clone());
            let b = self.branches.get_mut(&key);
            invariant!(b.is_some(), "a destination without its branch");
            if let Some(b) = b {
                b.dests.insert(dest.clone(), state);
                self.branch_of.insert(dest, key);
            }
        }
        for (dest, key) in &self.branch_of {
            if rewritten.contains(key) {
                resync.extend(self.rules.gvrs_of_destination(dest).into_iter().cloned());
            }
            let Some(sealings) = resealed.get(key) else {
                continue;
            };
            resync.extend(
                self.rules
                    .gvrs_of_destination(dest)
                    .into_iter()
                    .filter(|g| sealings.iter().any(|s| s.seals(&g.group, &g.resource)))
                    .cloned(),
            );
        }
        self.wake.extend(self.branches.keys().cloned());
        // A stream that is not running yet starts with a list anyway.
        let running: Vec<Gvr> = resync
            .into_iter()
            .filter(|g| self.watched.contains(g))
            .collect();
        self.resync(running);
        self.emit_statuses(status);
    }

    pub(super) fn emit_statuses(&mut self, status: BTreeMap<CrRef, Vec<Condition>>) {
        for (cr, conds) in &status {
            if self.statuses.get(cr) != Some(conds) {
                self.outputs
                    .push_back(Output::Status(cr.clone(), conds.clone()));
            }
        }
        self.statuses = status;
    }

    pub(super) fn refresh_statuses(&mut self) {
        let (_, status) = self.compile_rules();
        self.emit_statuses(status);
    }
}

/// The `Encryption` and `Signing` conditions of a GitRepoConfig that asks for them.
fn trust_conditions(s: &RepoSettings, signing: Option<&SigningVerdict>) -> Vec<Condition> {
    let mut conds = Vec::new();
    match (&s.sealing, &s.sealing_problem) {
        (None, _) => {}
        (Some(sealing), None) => conds.push(Condition {
            type_: "Encryption".into(),
            status: true,
            reason: "SopsAge".into(),
            message: format!(
                "Secrets are written as SOPS files for {} age recipient(s); sops --decrypt restores them",
                sealing.recipients.len()
            ),
        }),
        (Some(_), Some(problem)) => conds.push(Condition {
            type_: "Encryption".into(),
            status: false,
            reason: "EncryptionInvalid".into(),
            message: format!("{problem}; no Secret is written until it is fixed"),
        }),
    }
    if let Some(secret) = &s.signing_secret {
        conds.push(match signing {
            Some(SigningVerdict::Usable {
                public_key,
                fingerprint,
            }) => Condition {
                type_: "Signing".into(),
                status: true,
                reason: "SigningKeyLoaded".into(),
                message: format!(
                    "commits are signed with {public_key} ({fingerprint}) from Secret {secret}; put it in an allowed-signers file to verify them"
                ),
            },
            Some(SigningVerdict::Invalid(problem)) => Condition {
                type_: "Signing".into(),
                status: false,
                reason: "SigningKeyInvalid".into(),
                message: problem.clone(),
            },
            None => Condition {
                type_: "Signing".into(),
                status: false,
                reason: "SigningKeyPending".into(),
                message: format!("Secret {secret} is being read"),
            },
        });
    }
    conds
}
