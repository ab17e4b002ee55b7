//! Invariant checkers, one concern per file. Each appends human-readable violations.

pub mod attribution;
pub mod convergence;
pub mod delivery;
pub mod empty_commits;
pub mod history;
pub mod limits;
pub mod orphans;
pub mod secrets;
pub mod watches;

/// The operation and identifier of an event commit (`[UPDATE] v1/configmaps/ns/name`).
pub fn event_subject(message: &str) -> Option<(&str, &str)> {
    let subject = message.lines().next()?;
    let (op, ident) = subject.strip_prefix('[')?.split_once("] ")?;
    matches!(op, "CREATE" | "UPDATE" | "DELETE").then_some((op, ident))
}

/// The identifier a path stands for under `folder` (`{folder}/{identifier}.yaml`).
pub fn identifier_of<'a>(path: &'a str, folder: &str) -> Option<&'a str> {
    let rel = if folder.is_empty() {
        path
    } else {
        path.strip_prefix(folder)?.strip_prefix('/')?
    };
    rel.strip_suffix(".yaml")
}
