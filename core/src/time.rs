//! Time as the core sees it: always an argument, never read from a clock.

use serde::{Deserialize, Serialize};

/// One instant handed to the core by its driver.
///
/// `mono_ms` drives every timer; `wall_ms` (Unix epoch milliseconds) only stamps commits, so a wall
/// clock that jumps never fires or starves a timer.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Now {
    /// Monotonic milliseconds since an arbitrary origin chosen by the driver.
    pub mono_ms: u64,
    /// Wall-clock milliseconds since the Unix epoch.
    pub wall_ms: i64,
}

impl Now {
    /// An instant whose monotonic and wall readings are the same number (handy in tests).
    pub const fn at(ms: u64) -> Self {
        Self {
            mono_ms: ms,
            wall_ms: ms as i64,
        }
    }
}

/// A monotonic clock that never goes backwards, whatever the driver passes in.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MonoClamp {
    last_ms: u64,
}

impl MonoClamp {
    /// Returns `now` with its monotonic part clamped to the largest value seen so far.
    pub(crate) fn observe(&mut self, now: Now) -> Now {
        self.last_ms = self.last_ms.max(now.mono_ms);
        Now {
            mono_ms: self.last_ms,
            wall_ms: now.wall_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_time_never_goes_backwards() {
        let mut clamp = MonoClamp::default();
        assert_eq!(clamp.observe(Now::at(100)).mono_ms, 100);
        let back = clamp.observe(Now {
            mono_ms: 40,
            wall_ms: 7,
        });
        assert_eq!(
            back.mono_ms, 100,
            "a driver that passes an earlier time must not rewind timers"
        );
        assert_eq!(back.wall_ms, 7, "wall time is passed through untouched");
    }
}
