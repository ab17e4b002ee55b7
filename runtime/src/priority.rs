//! Thread priorities. The webhook's answer is on the API server's write path, while the core and
//! git work are not: on a busy machine the scheduler should run the webhook first. Raising a
//! priority needs a capability the pod does not have, so the other threads lower theirs instead.
//! Niceness is per thread on Linux and only orders this process's threads against each other
//! and the node's other work; a pod's CPU limit still applies to all of them together.

/// The niceness of the main runtime's threads (the driver with the core, watches, git work).
pub const BACKGROUND_NICE: i32 = 10;

/// Lowers the calling thread's priority to [`BACKGROUND_NICE`]. Failure is harmless (the thread
/// keeps its priority) and is reported once per thread at debug level.
pub fn lower_current_thread() {
    // SAFETY: gettid has no preconditions; setpriority only reads its arguments.
    let r = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, BACKGROUND_NICE)
    };
    if r != 0 {
        tracing::debug!(
            "could not lower a thread's priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// The calling thread's niceness.
pub fn current_nice() -> i32 {
    // SAFETY: as above. A niceness of -1 is a valid answer, so errno would tell an error apart;
    // the calling thread always exists, so there is none.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lowered_thread_runs_at_the_background_niceness_and_others_keep_theirs() {
        let before = current_nice();
        let lowered = std::thread::spawn(|| {
            lower_current_thread();
            current_nice()
        })
        .join()
        .unwrap();
        assert_eq!(lowered, BACKGROUND_NICE.max(before));
        assert_eq!(current_nice(), before, "only the calling thread changes");
    }
}
