//! A remote that accepts connections and never answers: the op is abandoned after the git timeout
//! (`--git-timeout`) as `RemoteTimeout`, retryable. Its own test binary: the timeout is
//! process-wide in libgit2, and the other executor tests run with the default.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use gitops_reverser_core::config::NamespacedName;
use gitops_reverser_core::io::{GitOp, GitOpKind, GitResult};
use gitops_reverser_runtime::git::exec::set_git_timeout_ms;
use gitops_reverser_runtime::git::{execute, Workspace};

#[test]
fn a_remote_that_never_answers_times_out_as_remote_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept, then hold every connection open without a byte.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::new(dir.path()).unwrap();
    set_git_timeout_ms(1_000);
    let op = GitOp {
        op_id: 1,
        repo: NamespacedName {
            namespace: "team-a".into(),
            name: "stuck".into(),
        },
        repo_url: format!("git://127.0.0.1:{port}/r.git"),
        branch: "main".into(),
        secret_name: None,
        sealing: None,
        signing_secret: None,
        kind: GitOpKind::ReadPaths { folder: "".into() },
    };
    let started = Instant::now();
    let result = execute(&ws, &op, None);
    let took = started.elapsed();
    match result {
        GitResult::Failed {
            retryable,
            reason,
            cause,
        } => {
            assert!(retryable, "waiting may help: {reason}");
            assert_eq!(cause, "RemoteTimeout", "{reason}");
            assert!(reason.contains("--git-timeout"), "{reason}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(
        took < Duration::from_secs(20),
        "abandoned after about the timeout, not held for ever: {took:?}"
    );
}
