//! Faults of the world around the core, as the swarm draws them: the operator killed and
//! restarted (its core rebuilt from nothing), wall-clock jumps, writers outside the operator,
//! and the end of every fault (heal) before the run settles.

use super::*;

impl World {
    /// Faults that strike the world rather than one write: crash, clock, outside writers.
    pub(super) fn world_faults(&mut self) {
        if self.inject(Fault::Crash) {
            self.crash();
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

    /// The operator restarts: memory lost, in-flight pushes may or may not have landed.
    pub(super) fn crash(&mut self) {
        let ops = std::mem::take(&mut self.ops);
        for (_, f) in ops {
            if let GitOpKind::Push {
                expected_head,
                commits,
            } = &f.op.kind
            {
                if self.rng.faults.gen_bool(0.5) {
                    let _ = self.apply_push(&f.op, expected_head.as_ref(), commits, f.planned_ms);
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
