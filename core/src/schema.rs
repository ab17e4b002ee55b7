//! OpenAPI facts of the configuration types that serde alone cannot state (feature `schema`).
//!
//! The CRDs are generated from the spec types in [`crate::config`]; these are the validations the
//! API server enforces before the core sees an object. They must work on a 1.20 server: plain
//! OpenAPI v3 (patterns in RE2 syntax, no lookaround), no CEL. The core validates again, fully.

use schemars::{json_schema, Schema, SchemaGenerator};

/// A duration as the core reads it: whole numbers of `h`, `m`, `s` or `ms` (`1m`, `30s`, `1h30m`).
pub const DURATION_PATTERN: &str = r"^([0-9]+(ms|s|m|h))+$";

/// A relative folder: empty, or segments that are neither empty, `.` nor `..`, with no leading
/// slash (a trailing one is allowed). Written without lookahead, which RE2 lacks. The core refuses
/// more (backslashes, control characters, segments over 250 bytes) and says so in the status.
pub const BASE_FOLDER_PATTERN: &str =
    r"^$|^([^/.][^/]*|\.[^/.][^/]*|\.\.[^/]+)(/([^/.][^/]*|\.[^/.][^/]*|\.\.[^/]+))*/?$";

/// A WatchRule's `gitRepoConfigRef`: a name, or `{name, namespace}` so that a rule naming another
/// namespace reaches the core and is refused there with a reason. A structural schema cannot say
/// "string or object", so the field keeps whatever it holds and the core checks it.
pub fn repo_ref(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "The GitRepoConfig in the rule's namespace: its name.",
        "x-kubernetes-preserve-unknown-fields": true
    })
}
