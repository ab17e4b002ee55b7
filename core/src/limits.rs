//! Every named bound of the core in one place, so that a driver, the simulator and the
//! benchmarks size themselves by the same numbers the core enforces.

pub use crate::batch::{
    BACKLOG_BYTES_MAX, PENDING_BYTES_MAX, PENDING_COMMITS_MAX, PUSH_BYTES_MAX, PUSH_COMMITS_MAX,
    RESYNC_PART_WRITES_MAX,
};
pub use crate::core::{OBJECT_BYTES_MAX, UNSERVED_TYPES_MAX};
pub use crate::correlation::{
    ENTRIES_PER_KEY_MAX as CORRELATION_ENTRIES_PER_KEY_MAX, KEYS_MAX as CORRELATION_KEYS_MAX,
    TTL_MS as CORRELATION_TTL_MS,
};
pub use crate::gitplan::{BACKOFF_BASE_MS, BACKOFF_MS_MAX, CONFLICTS_BEFORE_BACKOFF};
pub use crate::ids::SEGMENT_BYTES_MAX;
pub use crate::json::DEPTH_MAX as JSON_DEPTH_MAX;
