//! Faults of the world around the core, as the swarm draws them: the operator killed and
//! restarted (its core rebuilt from nothing), wall-clock jumps, writers outside the operator,
//! and the end of every fault (heal) before the run settles.

use super::*;

impl World {
    /// Faults that strike the world rather than one write: crash, clock, outside writers.
    pub(super) fn world_faults(&mut self) {
        if self.inject(Fault::Crash) {
            self.crash(false);
        }
        if self.inject(Fault::Failover) {
            self.crash(true);
        }
        if self.inject(Fault::ClockJump) {
            let jump = self.rng.faults.gen_range(-7_200_000i64..7_200_000);
            self.wall_offset_ms += jump;
            self.wall_offset_max_ms = self.wall_offset_max_ms.max(self.wall_offset_ms);
        }
        if self.inject(Fault::OutsideWriter) {
            self.outside_write(None);
        }
    }

    /// The operator restarts, or (`failover`) another replica's core takes over: memory lost,
    /// in-flight pushes may or may not land. After a crash they land (or not) at once; after a
    /// failover the deposed leader's push lands up to 5 s later, while the new core lists,
    /// reads and seeds: only its expected head keeps it from undoing what the new core pushed.
    pub(super) fn crash(&mut self, failover: bool) {
        let ops = std::mem::take(&mut self.ops);
        for (_, f) in ops {
            if let GitOpKind::Push {
                expected_head,
                commits,
            } = &f.op.kind
            {
                if self.rng.faults.gen_bool(0.5) {
                    if failover {
                        let delay = self.rng.faults.gen_range(1..5_000);
                        self.at(
                            self.now + delay,
                            Ev::DeposedPush(f.op.clone(), f.planned_ms),
                        );
                    } else {
                        let _ =
                            self.apply_push(&f.op, expected_head.as_ref(), commits, f.planned_ms);
                    }
                }
            }
        }
        self.busy.clear();
        self.streams.clear();
        self.checkers
            .on_event(Event::AllChanged { now_ms: self.now });
        self.generation += 1;
        self.next_tick = None;
        self.core = Core::new(core_config(
            self.generation,
            self.behaviours.secret_policy,
            self.behaviours.push_bounds,
            self.behaviours.correlation_ttl_ms,
        ));
        if let Some(rec) = &mut self.recording {
            rec.restarts.push(Restart {
                at: rec.entries.len(),
                config: core_config(
                    self.generation,
                    self.behaviours.secret_policy,
                    self.behaviours.push_bounds,
                    self.behaviours.correlation_ttl_ms,
                ),
            });
        }
        self.configure();
        self.hand_window();
    }

    /// The records of the last TTL go to the new core, oldest first, before anything else: a
    /// change admitted before the crash and not yet pushed keeps its author. The core keeps each
    /// for a TTL from now, so the writes they record are noted as handed again (the checker's
    /// window for a refused twin runs from the latest time its record reached a core).
    fn hand_window(&mut self) {
        let ttl_ms = self.behaviours.correlation_ttl_ms;
        let now = self.now;
        while self
            .window
            .front()
            .is_some_and(|(at, _)| at + ttl_ms <= now)
        {
            self.window.pop_front();
        }
        let records: Vec<(u64, AdmissionRequest)> = self.window.iter().cloned().collect();
        for (at, req) in records {
            for w in self.cluster.writes_admitted(&req, at) {
                w.redelivered_ms = Some(now);
            }
            self.feed(Input::Admission(req));
        }
    }

    // ---- git ----------------------------------------------------------------------------------

    /// The liveness phase: faults off, workload stopped, every stream relisted (a resync).
    pub(super) fn heal(&mut self) {
        // The cluster comes to rest first: deletions the finalizer holds finish (a change after
        // the relist that a rule's `operations` leaves out would stay unseen for good).
        if let Some(&(t, _)) = self
            .sched
            .iter()
            .filter(|(_, e)| e.settles_cluster())
            .map(|(k, _)| k)
            .next_back()
        {
            self.at(t + 1, Ev::Heal);
            return;
        }
        self.swarm.heal();
        self.healed_at = Some(self.now);
        let gvrs: Vec<Gvr> = self.streams.keys().cloned().collect();
        for gvr in gvrs {
            self.relist(gvr);
        }
    }
}
