//! A remote that sends more than a fetch may take, or takes longer in all than a fetch may last,
//! is cut off with a reason naming the limit; the op is retryable and nothing else is held. Its
//! own test binary: the limits are process-wide.

mod support;

use gitops_reverser_core::io::{GitOpKind, GitResult};
use gitops_reverser_runtime::git::exec::set_fetch_limits;
use gitops_reverser_runtime::git::{execute, Workspace};
use support::*;

fn read_paths(ws: &Workspace, url: &str) -> GitResult {
    execute(
        ws,
        &op(
            1,
            url,
            None,
            GitOpKind::ReadPaths {
                folder: String::new(),
            },
        ),
        None,
    )
}

fn cause_of(r: GitResult) -> (String, String) {
    match r {
        GitResult::Failed {
            retryable,
            reason,
            cause,
        } => {
            assert!(retryable, "{reason}");
            (cause, reason)
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn a_fetch_over_its_byte_or_time_limit_is_cut_off_and_says_which() {
    let server = git_daemon();
    let bare = bare_repo(server.dir.path(), "r.git");
    // About 2 MiB that does not compress: hex of a pseudo-random stream.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let big: String = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("{:02x}", x as u8)
        })
        .collect();
    outside_commit(&bare, "main", "big.txt", &big);
    let url = format!("git://127.0.0.1:{}/r.git", server.port);

    set_fetch_limits(256 << 10, 600_000);
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::new(dir.path()).unwrap();
    let (cause, reason) = cause_of(read_paths(&ws, &url));
    assert_eq!(cause, "RemoteTooLarge", "{reason}");
    assert!(reason.contains("for one fetch"), "{reason}");

    set_fetch_limits(1 << 30, 0);
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::new(dir.path()).unwrap();
    let (cause, reason) = cause_of(read_paths(&ws, &url));
    assert_eq!(cause, "RemoteTooSlow", "{reason}");

    // Within the limits the same fetch works.
    set_fetch_limits(1 << 30, 600_000);
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::new(dir.path()).unwrap();
    match read_paths(&ws, &url) {
        GitResult::Paths { entries, .. } => assert_eq!(entries.len(), 1),
        other => panic!("expected the listing, got {other:?}"),
    }
}
