//! Retry delays for API requests: 800 ms doubling to 30 s with jitter (kube-runtime's defaults),
//! reset once a request succeeds.

use std::time::Duration;

/// First delay, in milliseconds.
pub const BACKOFF_FIRST_MS: u64 = 800;
/// Longest delay, in milliseconds.
pub const BACKOFF_MS_MAX: u64 = 30_000;

/// Exponential backoff with jitter.
#[derive(Debug)]
pub struct Backoff {
    next_ms: u64,
    jitter: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64)
            .unwrap_or(1);
        Self {
            next_ms: BACKOFF_FIRST_MS,
            jitter: seed | 1,
        }
    }
}

impl Backoff {
    /// The next delay: the current one with up to a quarter of jitter either way, then doubled.
    pub fn next_delay(&mut self) -> Duration {
        // xorshift: jitter only spreads retries of many streams apart, it needs no quality.
        self.jitter ^= self.jitter << 13;
        self.jitter ^= self.jitter >> 7;
        self.jitter ^= self.jitter << 17;
        let base = self.next_ms;
        let spread = base / 2;
        let ms = base - spread / 2 + self.jitter % (spread + 1);
        self.next_ms = (base * 2).min(BACKOFF_MS_MAX);
        Duration::from_millis(ms)
    }

    /// Back to the first delay.
    pub fn reset(&mut self) {
        self.next_ms = BACKOFF_FIRST_MS;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_within_their_jitter_and_reset() {
        let mut b = Backoff::default();
        let mut base = BACKOFF_FIRST_MS;
        for _ in 0..10 {
            let d = b.next_delay().as_millis() as u64;
            assert!(
                d >= base - base / 4 && d <= base + base / 4,
                "{d} around {base}"
            );
            base = (base * 2).min(BACKOFF_MS_MAX);
        }
        b.reset();
        let d = b.next_delay().as_millis() as u64;
        assert!(d <= BACKOFF_FIRST_MS + BACKOFF_FIRST_MS / 4);
    }
}
