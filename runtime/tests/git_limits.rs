//! A remote that sends more than a fetch may take, or takes longer in all than a fetch may last,
//! is cut off with a reason naming the limit; the op is retryable and nothing else is held. Its
//! own test binary: the limits are process-wide.

mod support;

use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gitops_reverser_core::io::{GitOpKind, GitResult};
use gitops_reverser_runtime::git::exec::set_fetch_limits;
use gitops_reverser_runtime::git::{execute, GitExecutor, Workspace};
use support::*;

/// The limits are process-wide: one test at a time.
static LIMITS: Mutex<()> = Mutex::new(());

fn limits() -> std::sync::MutexGuard<'static, ()> {
    LIMITS.lock().unwrap_or_else(|p| p.into_inner())
}

/// A git:// server that answers every request with the start of a long pkt-line and then one
/// byte every 100 ms, for ever: never silent long enough for a read timeout, never done.
struct Trickler {
    port: u16,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Trickler {
    fn start() -> Trickler {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (s, c) = (stop.clone(), conns.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                if s.load(Ordering::SeqCst) {
                    return;
                }
                c.lock().unwrap().push(conn.try_clone().unwrap());
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = conn.write_all(b"fff0");
                    while !s.load(Ordering::SeqCst) && conn.write_all(b"x").is_ok() {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                });
            }
        });
        Trickler { port, stop, conns }
    }
}

impl Drop for Trickler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().iter() {
            let _ = c.shutdown(Shutdown::Both);
        }
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

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
    let _one = limits();
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

#[test]
fn a_trickled_ref_advertisement_is_answered_at_the_time_limit_and_holds_one_thread() {
    let _one = limits();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(trickled_ref_advertisement());
}

async fn trickled_ref_advertisement() {
    let trickler = Trickler::start();
    let url = format!("git://127.0.0.1:{}/r.git", trickler.port);
    set_fetch_limits(1 << 30, 2_000);
    let dir = tempfile::tempdir().unwrap();
    let git = GitExecutor::new(dir.path()).unwrap();
    let read = || {
        op(
            1,
            &url,
            None,
            GitOpKind::ReadPaths {
                folder: String::new(),
            },
        )
    };

    let started = Instant::now();
    let (cause, reason) = cause_of(git.run(read(), None, None).await);
    assert_eq!(cause, "RemoteTooSlow", "{reason}");
    assert!(reason.contains("in all"), "{reason}");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "answered at the 2 s limit, not at the remote's pace: {took:?}"
    );

    // Its thread still reads the trickle: the branch takes no other op meanwhile.
    let (cause, reason) = cause_of(git.run(read(), None, None).await);
    assert_eq!(cause, "RemoteTooSlow", "{reason}");
    assert!(reason.contains("still running"), "{reason}");

    // Once the remote lets go, the clone is usable again.
    drop(trickler);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, reason) = cause_of(git.run(read(), None, None).await);
        if !reason.contains("still running") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stuck op never ended: {reason}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    set_fetch_limits(1 << 30, 600_000);
}
