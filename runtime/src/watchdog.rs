//! Liveness of the driver's loop. The loop turns at least once a second (its metrics tick), so
//! a loop that has not turned for [`STALL_WARN_MS`] is stuck: in one input's handling, or
//! waiting for a wake-up that does not come. A thread of its own (not the runtime's, which may
//! be the stuck part) then logs what the loop was doing and every thread's state, and once the
//! stall passes [`STALL_UNHEALTHY_MS`] `/healthz` fails, so that the kubelet restarts the pod.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};

/// How long the loop may go without a turn before the log says so.
pub(crate) const STALL_WARN_MS: u64 = 10_000;
/// How long the loop may go without a turn before `/healthz` fails. No input takes the core
/// this long: the largest measured (a 10,000-object relist) takes well under a second.
pub(crate) const STALL_UNHEALTHY_MS: u64 = 60_000;

/// What the driver's loop last did, and when it last turned.
pub(crate) struct Heartbeat {
    origin: Instant,
    /// Whether a driver's loop runs now (not between terms, not in the shutdown's drain).
    running: AtomicBool,
    /// Milliseconds after `origin` of the loop's last turn.
    turned_ms: AtomicU64,
    /// What the loop is doing since that turn.
    step: Mutex<&'static str>,
}

/// A stalled loop: for how long, and in what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stall {
    pub for_ms: u64,
    pub step: &'static str,
}

impl std::fmt::Display for Stall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the driver's loop has not turned for {} s (it was handling {})",
            self.for_ms / 1000,
            self.step
        )
    }
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
            running: AtomicBool::new(false),
            turned_ms: AtomicU64::new(0),
            step: Mutex::new("nothing"),
        }
    }
}

impl Heartbeat {
    fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_millis() as u64
    }

    /// The loop starts (a term's driver) or stops (its drain, the term's end).
    pub(crate) fn set_running(&self, running: bool, now: Instant) {
        self.turned_ms.store(self.ms(now), Ordering::Relaxed);
        self.running.store(running, Ordering::Relaxed);
    }

    /// The loop is back at its wait for the next input.
    pub(crate) fn turn(&self, now: Instant) {
        self.turned_ms.store(self.ms(now), Ordering::Relaxed);
        self.doing("waiting for its next input");
    }

    /// The loop is handling `step` (named for the log, should it never end).
    pub(crate) fn doing(&self, step: &'static str) {
        *self.step.lock().unwrap_or_else(|p| p.into_inner()) = step;
    }

    /// The stall at `now`, if the loop runs and has not turned for `threshold_ms`.
    pub(crate) fn stall(&self, now: Instant, threshold_ms: u64) -> Option<Stall> {
        if !self.running.load(Ordering::Relaxed) {
            return None;
        }
        let for_ms = self
            .ms(now)
            .saturating_sub(self.turned_ms.load(Ordering::Relaxed));
        (for_ms >= threshold_ms).then(|| Stall {
            for_ms,
            step: *self.step.lock().unwrap_or_else(|p| p.into_inner()),
        })
    }
}

/// Watches the heartbeat `owner` holds (the process's readiness and liveness) once a second, on
/// a thread of its own, until `owner` is dropped. A stall is
/// logged when it passes [`STALL_WARN_MS`] and again at [`STALL_UNHEALTHY_MS`] (the threads'
/// CPU times between the two tell a spinning thread from a blocked one).
pub(crate) fn spawn<T: AsRef<Heartbeat> + Send + Sync + 'static>(owner: Weak<T>) {
    let spawned = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            let mut logged = [false; 2];
            while let Some(held) = owner.upgrade() {
                let beat: &Heartbeat = (*held).as_ref();
                match beat.stall(Instant::now(), STALL_WARN_MS) {
                    None => logged = [false; 2],
                    Some(stall) => {
                        let level = usize::from(stall.for_ms >= STALL_UNHEALTHY_MS);
                        if !logged[level] {
                            logged[level] = true;
                            tracing::error!(
                                stalled_ms = stall.for_ms,
                                threads = %threads(),
                                "{stall}{}",
                                if level == 1 { ": /healthz fails from now on" } else { "" },
                            );
                        }
                    }
                }
                drop(held);
                std::thread::sleep(Duration::from_secs(1));
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("no watchdog for the driver's loop: {e}");
    }
}

/// Every thread of this process: name, scheduler state, CPU time and what it waits in.
pub(crate) fn threads() -> String {
    // SAFETY: sysconf only reads its argument.
    let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return "(no /proc/self/task)".into();
    };
    let mut out: Vec<String> = tasks
        .flatten()
        .map(|t| {
            let p = t.path();
            let read = |f: &str| std::fs::read_to_string(p.join(f)).unwrap_or_default();
            let stat = read("stat");
            // The name is in parentheses and may hold spaces: the fields follow the last ')'.
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace().collect())
                .unwrap_or_default();
            let field = |i: usize| fields.get(i).copied().unwrap_or("?");
            let cpu_ms = (field(11).parse::<u64>().unwrap_or(0)
                + field(12).parse::<u64>().unwrap_or(0))
                * 1000
                / ticks_per_s;
            format!(
                "{} [{}] {} cpu {cpu_ms} ms in {}",
                t.file_name().to_string_lossy(),
                read("comm").trim(),
                field(0),
                read("wchan").trim(),
            )
        })
        .collect();
    out.sort();
    out.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_that_has_not_turned_for_the_threshold_is_stalled_in_what_it_last_did() {
        let beat = Heartbeat::default();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(beat.stall(at(60_000), 10_000), None, "no loop runs yet");
        beat.set_running(true, t0);
        beat.turn(at(1_000));
        beat.doing("a watch event");
        assert_eq!(beat.stall(at(10_999), 10_000), None);
        assert_eq!(
            beat.stall(at(11_000), 10_000),
            Some(Stall {
                for_ms: 10_000,
                step: "a watch event"
            })
        );
        beat.turn(at(11_500));
        assert_eq!(beat.stall(at(12_000), 10_000), None, "it turned again");
        beat.set_running(false, at(12_000));
        assert_eq!(
            beat.stall(at(90_000), 10_000),
            None,
            "a stopped loop is not stalled"
        );
    }

    #[test]
    fn the_thread_table_names_this_thread_with_its_state() {
        std::thread::Builder::new()
            .name("table-probe".into())
            .spawn(|| {
                let table = threads();
                assert!(table.contains("[table-probe] R cpu"), "{table}");
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
