//! The git executor's write speed, each figure beside a baseline measured in the same run.
//!
//! `cargo run -p gitops-reverser-runtime --release --example git_bench -- [files] [commits] [naive_commits]`
//! (defaults 100000 1000 100)
//!
//! 1. Seed: `files` manifests (`{group}/{version}/{resource}/{ns}/{name}.yaml`, ~400 B each) as one
//!    commit into an empty repository, against `git fast-import` writing the same tree.
//! 2. Incremental: `commits` commits of 1–5 changed files each on top of that tree, against the naive
//!    way (write files in a checkout, `git add`, `git commit`), timed over `naive_commits` commits.
//! 3. Push: 20 commits on the seeded branch, pushed by the executor to a local `git daemon`, against
//!    `git push` of 20 equivalent commits from a clone.
//!
//! `... --example git_bench -- keep-up [N...] [--commits K]` (defaults 5000 50000, K 1000): keeping
//! up with sustained change in one folder of N files (one namespace of N ConfigMaps), K commits of
//! one changed file each, written as the executor writes them (pushes of 20, packs merged when
//! there are too many), against `git fast-import` of the same commit sequence on the same seeded
//! branch. Both must end on the same tree.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use git2::Oid;
use gitops_reverser_core::config::NamespacedName;
use gitops_reverser_core::io::{FileBody, GitOp, GitOpKind, GitResult, Identity, PlannedCommit};
use gitops_reverser_runtime::git::commit::{maintain, write_commits};
use gitops_reverser_runtime::git::{execute, Workspace};

/// Commits per push: the default of a GitRepoConfig's `push.maxCommits`.
const PUSH_MAX_COMMITS: usize = 20;

const RESOURCES: &[(&str, &str, &str)] = &[
    ("", "v1", "configmaps"),
    ("", "v1", "secrets"),
    ("", "v1", "services"),
    ("", "v1", "serviceaccounts"),
    ("apps", "v1", "deployments"),
    ("apps", "v1", "statefulsets"),
    ("batch", "v1", "cronjobs"),
    ("networking.k8s.io", "v1", "ingresses"),
    ("rbac.authorization.k8s.io", "v1", "roles"),
    ("example.com", "v1alpha1", "widgets"),
];

/// Deterministic pseudo-random numbers (xorshift), so every run writes the same files.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn path_of(i: usize) -> String {
    let (group, version, resource) = RESOURCES[i % RESOURCES.len()];
    let ns = format!("team-{:03}", (i / RESOURCES.len()) % 200);
    let name = format!("app-{:05}", i / (RESOURCES.len() * 200));
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    format!("{gv}/{resource}/{ns}/{name}.yaml")
}

fn manifest(i: usize, generation: u64) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-{i:05}\n  namespace: team-{:03}\n  labels:\n    app.kubernetes.io/name: app-{i:05}\n    app.kubernetes.io/part-of: shop\n    tier: backend\ndata:\n  LOG_LEVEL: info\n  FEATURE_FLAGS: checkout,search,recommendations\n  GENERATION: \"{generation}\"\n  DATABASE_URL: postgres://db.team-{:03}.svc:5432/app\n  CACHE_TTL_SECONDS: \"300\"\n",
        i % 200,
        i % 200
    )
}

fn identity(name: &str) -> Identity {
    Identity {
        name: name.into(),
        email: format!("{name}@cluster.local"),
    }
}

fn planned(message: String, writes: Vec<(String, Option<Arc<[u8]>>)>, t: i64) -> PlannedCommit {
    PlannedCommit {
        author: identity("alice"),
        author_time_ms: t,
        committer: identity("gitops-reverser"),
        commit_time_ms: t,
        message,
        writes: writes
            .into_iter()
            .map(|(p, b)| (p, b.map(FileBody::Yaml)))
            .collect(),
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "alice")
        .env("GIT_AUTHOR_EMAIL", "alice@cluster.local")
        .env("GIT_COMMITTER_NAME", "gitops-reverser")
        .env("GIT_COMMITTER_EMAIL", "gitops-reverser@cluster.local")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// A server process killed when the benchmark ends, also by a panic.
struct KillOnDrop(std::process::Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// 1–5 files changed per commit, deterministic.
fn changes(rng: &mut Rng, files: usize, generation: u64) -> Vec<(String, Option<Arc<[u8]>>)> {
    let n = 1 + rng.below(5) as usize;
    let mut w: Vec<(String, Option<Arc<[u8]>>)> = (0..n)
        .map(|_| {
            let i = rng.below(files as u64) as usize;
            (
                path_of(i),
                Some(Arc::from(manifest(i, generation).into_bytes())),
            )
        })
        .collect();
    w.sort_by(|a, b| a.0.cmp(&b.0));
    w.dedup_by(|a, b| a.0 == b.0);
    w
}

/// A file of the one flat folder `keep-up` writes to.
fn flat_path(i: usize) -> String {
    format!("v1/configmaps/load/cm-{i:05}.yaml")
}

/// Writes `stream` to `git fast-import` in `repo` and returns how long it took.
fn fast_import(repo: &Path, stream: &[u8]) -> Duration {
    let t = Instant::now();
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(repo)
        .stdin(Stdio::piped())
        .spawn()
        .expect("git fast-import starts");
    child.stdin.take().unwrap().write_all(stream).unwrap();
    assert!(child.wait().unwrap().success(), "git fast-import failed");
    t.elapsed()
}

/// One fast-import commit on `refs/heads/main` writing `writes` inline, authored as `planned`.
fn fast_import_commit(stream: &mut Vec<u8>, c: &PlannedCommit, from: Option<&str>) {
    let secs = c.author_time_ms / 1000;
    write!(
        stream,
        "commit refs/heads/main\nauthor {} <{}> {secs} +0000\ncommitter {} <{}> {} +0000\ndata {}\n{}",
        c.author.name,
        c.author.email,
        c.committer.name,
        c.committer.email,
        c.commit_time_ms / 1000,
        c.message.len(),
        c.message
    )
    .unwrap();
    if let Some(from) = from {
        writeln!(stream, "from {from}").unwrap();
    }
    for (path, body) in &c.writes {
        match body {
            Some(b) => {
                let b = b.render();
                write!(stream, "M 100644 inline {path}\ndata {}\n", b.len()).unwrap();
                stream.extend_from_slice(&b);
                stream.push(b'\n');
            }
            None => writeln!(stream, "D {path}").unwrap(),
        }
    }
    stream.push(b'\n');
}

fn keep_up(args: &[String]) {
    // As the operator runs libgit2 (its Workspace sets the same).
    gitops_reverser_runtime::git::exec::configure_libgit2();
    let mut sizes = Vec::new();
    let mut commits = 1_000usize;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--commits" => commits = it.next().expect("--commits K").parse().expect("a number"),
            n => sizes.push(n.parse::<usize>().expect("folder sizes are numbers")),
        }
    }
    if sizes.is_empty() {
        sizes = vec![5_000, 50_000];
    }
    println!("keep-up: {commits} commits of one changed file each, in one folder of N files");
    println!("      N | ours ms/commit | fast-import ms/commit | ratio | pack merges | store ours / fast-import");
    for files in sizes {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let seed = planned(
            "[RESYNC] seed\n".into(),
            (0..files)
                .map(|i| (flat_path(i), Some(Arc::from(manifest(i, 0).into_bytes()))))
                .collect(),
            1_700_000_000_000,
        );
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        let sequence: Vec<PlannedCommit> = (0..commits)
            .map(|k| {
                let i = rng.below(files as u64) as usize;
                planned(
                    format!("[UPDATE] v1/configmaps/load/cm-{i:05}\n"),
                    vec![(
                        flat_path(i),
                        Some(Arc::from(manifest(i, k as u64 + 1).into_bytes())),
                    )],
                    1_700_000_001_000 + k as i64 * 1000,
                )
            })
            .collect();

        // Ours: the seed (not timed), then the sequence as the executor writes it.
        let ours = root.join("ours.git");
        let repo = git2::Repository::init_bare(&ours).unwrap();
        let mut head = write_commits(&repo, None, std::slice::from_ref(&seed)).unwrap();
        drop(repo);
        let mut merges = 0usize;
        let t = Instant::now();
        for batch in sequence.chunks(PUSH_MAX_COMMITS) {
            merges += usize::from(maintain(&ours).unwrap());
            let repo = git2::Repository::open_bare(&ours).unwrap();
            head = write_commits(&repo, Some(head), batch).unwrap();
        }
        let ours_took = t.elapsed();

        // fast-import: the seed in one run (not timed), the sequence in a second.
        let fi = root.join("fast-import.git");
        git(
            root,
            &["init", "-q", "--bare", "-b", "main", fi.to_str().unwrap()],
        );
        let mut stream = Vec::new();
        fast_import_commit(&mut stream, &seed, None);
        fast_import(&fi, &stream);
        let mut stream = Vec::new();
        for (k, c) in sequence.iter().enumerate() {
            fast_import_commit(&mut stream, c, (k == 0).then_some("refs/heads/main^0"));
        }
        let fi_took = fast_import(&fi, &stream);

        let repo = git2::Repository::open_bare(&ours).unwrap();
        let ours_tree = repo.find_commit(head).unwrap().tree_id().to_string();
        let fi_tree = git(&fi, &["rev-parse", "refs/heads/main^{tree}"]);
        assert_eq!(ours_tree, fi_tree.trim(), "both wrote the same final tree");
        let size = |dir: &Path| -> u64 {
            let mut total = 0;
            let mut stack = vec![dir.to_path_buf()];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(d).unwrap() {
                    let e = e.unwrap();
                    if e.file_type().unwrap().is_dir() {
                        stack.push(e.path());
                    } else {
                        total += e.metadata().unwrap().len();
                    }
                }
            }
            total
        };
        let (ours_ms, fi_ms) = (ms(ours_took) / commits as f64, ms(fi_took) / commits as f64);
        println!(
            "{files:>7} | {ours_ms:14.3} | {fi_ms:21.3} | {:5.2}x | {merges:11} | {:.1} / {:.1} MiB",
            ours_ms / fi_ms,
            size(&ours) as f64 / (1 << 20) as f64,
            size(&fi) as f64 / (1 << 20) as f64,
        );
    }
}

fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if raw.first().map(String::as_str) == Some("keep-up") {
        return keep_up(&raw[1..]);
    }
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let files = args.first().copied().unwrap_or(100_000);
    let commits = args.get(1).copied().unwrap_or(1_000);
    let naive_commits = args.get(2).copied().unwrap_or(100).min(commits);
    let tmp = tempfile::tempdir().unwrap();
    // GIT_BENCH_KEEP=1 keeps the repositories for a look afterwards.
    let root = if std::env::var_os("GIT_BENCH_KEEP").is_some() {
        tmp.keep()
    } else {
        tmp.path().to_path_buf()
    };
    let root = root.as_path();
    println!("git_bench: {files} files, {commits} incremental commits, naive baseline over {naive_commits}");

    // ---------------------------------------------------------------- seed
    let seed_writes: Vec<(String, Option<Arc<[u8]>>)> = {
        let mut w: Vec<_> = (0..files)
            .map(|i| (path_of(i), Some(Arc::from(manifest(i, 0).into_bytes()))))
            .collect();
        w.sort_by(|a, b| a.0.cmp(&b.0));
        w
    };
    let bytes: usize = seed_writes
        .iter()
        .map(|(_, b)| b.as_ref().unwrap().len())
        .sum();
    let seed = planned(
        "[RESYNC] seed\n".into(),
        seed_writes.clone(),
        1_700_000_000_000,
    );

    let ours_repo = root.join("ours.git");
    let repo = git2::Repository::init_bare(&ours_repo).unwrap();
    let t = Instant::now();
    let seed_head = write_commits(&repo, None, std::slice::from_ref(&seed)).unwrap();
    let ours_seed = t.elapsed();
    repo.reference("refs/heads/main", seed_head, true, "seed")
        .unwrap();

    // fast-import: the same tree from a stream built beforehand (building it is not timed).
    let mut stream = Vec::with_capacity(bytes + files * 64);
    for (i, (_, b)) in seed_writes.iter().enumerate() {
        let b = b.as_ref().unwrap();
        write!(stream, "blob\nmark :{}\ndata {}\n", i + 1, b.len()).unwrap();
        stream.extend_from_slice(b);
        stream.push(b'\n');
    }
    let msg = "[RESYNC] seed\n";
    write!(
        stream,
        "commit refs/heads/main\nauthor alice <alice@cluster.local> 1700000000 +0000\ncommitter gitops-reverser <gitops-reverser@cluster.local> 1700000000 +0000\ndata {}\n{msg}",
        msg.len()
    )
    .unwrap();
    for (i, (p, _)) in seed_writes.iter().enumerate() {
        writeln!(stream, "M 100644 :{} {p}", i + 1).unwrap();
    }
    stream.push(b'\n');
    let fi_repo = root.join("fast-import.git");
    git(
        root,
        &[
            "init",
            "-q",
            "--bare",
            "-b",
            "main",
            fi_repo.to_str().unwrap(),
        ],
    );
    let t = Instant::now();
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(&fi_repo)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&stream).unwrap();
    assert!(child.wait().unwrap().success());
    let fi_seed = t.elapsed();
    let fi_tree = git(&fi_repo, &["rev-parse", "main^{tree}"]);
    let our_tree = repo.find_commit(seed_head).unwrap().tree_id().to_string();
    assert_eq!(fi_tree.trim(), our_tree, "both wrote the same tree");
    println!(
        "seed:        ours {:8.1} ms   git fast-import {:8.1} ms   ratio {:.2}x   ({} files, {:.1} MiB)",
        ms(ours_seed),
        ms(fi_seed),
        ours_seed.as_secs_f64() / fi_seed.as_secs_f64(),
        files,
        bytes as f64 / (1 << 20) as f64
    );

    // ---------------------------------------------------------------- incremental
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let batches: Vec<PlannedCommit> = (0..commits)
        .map(|k| {
            planned(
                format!("[UPDATE] change {k}\n"),
                changes(&mut rng, files, k as u64 + 1),
                1_700_000_001_000 + k as i64,
            )
        })
        .collect();
    // As the executor runs: merge packs if there are too many, then write a batch as one pack.
    // Each mode on its own copy of the seeded repository (copying is not timed), so one mode's
    // packs and merges do not weigh on the other.
    let run = |batch: usize| -> (Oid, Duration, Vec<Duration>) {
        let ours_repo = root.join(format!("ours-{batch}.git"));
        copy_dir(&root.join("ours.git"), &ours_repo);
        let mut head = seed_head;
        let mut per_batch = Vec::new();
        let mut repacks = 0;
        let t = Instant::now();
        for chunk in batches.chunks(batch) {
            let s = Instant::now();
            repacks += maintain(&ours_repo).unwrap() as usize;
            let repo = git2::Repository::open_bare(&ours_repo).unwrap();
            head = write_commits(&repo, Some(head), chunk).unwrap();
            repo.reference(&format!("refs/heads/bench-{batch}"), head, true, "batch")
                .unwrap();
            per_batch.push(s.elapsed() / chunk.len() as u32);
        }
        let took = t.elapsed();
        println!(
            "             ({} batches of {batch}: {repacks} pack merges)",
            per_batch.len()
        );
        per_batch.sort();
        (head, took, per_batch)
    };
    let (_, ours_single, per_commit) = run(1);
    let (head, ours_inc, _) = run(PUSH_MAX_COMMITS);
    let ours_repo = root.join(format!("ours-{PUSH_MAX_COMMITS}.git"));
    let repo = git2::Repository::open_bare(&ours_repo).unwrap();
    repo.reference("refs/heads/main", head, true, "incremental")
        .unwrap();
    let p =
        |q: f64| ms(per_commit[((per_commit.len() as f64 * q) as usize).min(per_commit.len() - 1)]);

    // Naive: a checkout of the seeded tree, then write + add + commit per change.
    let work = root.join("naive");
    git(
        root,
        &[
            "clone",
            "-q",
            "-b",
            "main",
            fi_repo.to_str().unwrap(),
            work.to_str().unwrap(),
        ],
    );
    let t = Instant::now();
    for c in &batches[..naive_commits] {
        let mut paths = Vec::new();
        for (p, b) in &c.writes {
            std::fs::write(work.join(p), b.as_ref().unwrap().render()).unwrap();
            paths.push(p.as_str());
        }
        let mut args = vec!["add", "--"];
        args.extend(paths);
        git(&work, &args);
        git(&work, &["commit", "-q", "-m", c.message.trim_end()]);
    }
    let naive = t.elapsed();
    let ours_ms = ms(ours_inc) / commits as f64;
    let single_ms = ms(ours_single) / commits as f64;
    let naive_ms = ms(naive) / naive_commits.max(1) as f64;
    println!(
        "incremental: ours {ours_ms:8.3} ms/commit in pushes of {PUSH_MAX_COMMITS}, {single_ms:.3} ms/commit one per push (p50 {:.3}, p99 {:.3}, max {:.3})",
        p(0.5),
        p(0.99),
        p(1.0),
    );
    println!(
        "             naive write+add+commit {naive_ms:8.3} ms/commit   ours is {:.1}x faster (pushes of {PUSH_MAX_COMMITS}), {:.1}x (one commit per push)",
        naive_ms / ours_ms,
        naive_ms / single_ms
    );
    let naive_tree = git(&work, &["rev-parse", "HEAD^{tree}"]);
    let ours_at = {
        let h = write_commits(&repo, Some(seed_head), &batches[..naive_commits]).unwrap();
        repo.find_commit(h).unwrap().tree_id().to_string()
    };
    assert_eq!(
        naive_tree.trim(),
        ours_at,
        "the naive baseline wrote the same trees"
    );

    // ---------------------------------------------------------------- push
    let daemon_root = root.join("daemon");
    std::fs::create_dir_all(&daemon_root).unwrap();
    let remote = daemon_root.join("r.git");
    git(
        root,
        &[
            "clone",
            "-q",
            "--bare",
            ours_repo.to_str().unwrap(),
            remote.to_str().unwrap(),
        ],
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let daemon_bin = Path::new(git(root, &["--exec-path"]).trim()).join("git-daemon");
    let daemon = Command::new(daemon_bin)
        .args([
            "--reuseaddr",
            "--export-all",
            "--enable=receive-pack",
            "--listen=127.0.0.1",
            &format!("--port={port}"),
            &format!("--base-path={}", daemon_root.display()),
            "--verbose",
            daemon_root.to_str().unwrap(),
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut daemon = KillOnDrop(daemon);
    {
        use std::io::BufRead;
        let stderr = daemon.0.stderr.take().unwrap();
        let mut lines = std::io::BufReader::new(stderr).lines();
        while let Some(Ok(line)) = lines.next() {
            if line.contains("Ready to rumble") {
                break;
            }
        }
        std::thread::spawn(move || lines.for_each(drop));
    }
    let url = format!("git://127.0.0.1:{port}/r.git");
    let ws = Workspace::new(root.join("clones")).unwrap();
    let op = |id: u64, kind: GitOpKind| GitOp {
        op_id: id,
        repo: NamespacedName {
            namespace: "bench".into(),
            name: "repo".into(),
        },
        repo_url: url.clone(),
        secret_name: None,
        sealing: None,
        signing_secret: None,
        branch: "main".into(),
        kind,
    };
    let t = Instant::now();
    let read = execute(
        &ws,
        &op(
            1,
            GitOpKind::ReadPaths {
                folder: String::new(),
            },
        ),
        None,
    );
    let first_fetch = t.elapsed();
    let GitResult::Paths {
        head: Some(remote_head),
        entries,
    } = read
    else {
        panic!("{read:?}")
    };
    assert_eq!(entries.len(), files);
    let twenty: Vec<PlannedCommit> = (0..20)
        .map(|k| {
            planned(
                format!("[UPDATE] push {k}\n\nReverser-Op: bench\n"),
                changes(&mut rng, files, 10_000 + k),
                1_700_000_100_000 + k as i64,
            )
        })
        .collect();
    let t = Instant::now();
    let pushed = execute(
        &ws,
        &op(
            2,
            GitOpKind::Push {
                expected_head: Some(remote_head.clone()),
                commits: twenty.clone(),
            },
        ),
        None,
    );
    let ours_push = t.elapsed();
    assert!(matches!(pushed, GitResult::Pushed { .. }), "{pushed:?}");

    // Baseline: the same 20 changes committed in a clone (not timed), then `git push` (timed).
    let cli = root.join("cli");
    git(
        root,
        &["clone", "-q", "--no-checkout", &url, cli.to_str().unwrap()],
    );
    git(&cli, &["reset", "-q", &remote_head]);
    let pushed_head = git(&remote, &["rev-parse", "main"]);
    git(&cli, &["checkout", "-q", "-B", "other", &remote_head]);
    git(&cli, &["checkout", "-q", "--", "."]);
    for c in &twenty {
        for (p, b) in &c.writes {
            std::fs::write(cli.join(p), b.as_ref().unwrap().render()).unwrap();
        }
        git(&cli, &["commit", "-q", "-a", "-m", c.message.trim_end()]);
    }
    let t = Instant::now();
    git(&cli, &["push", "-q", "origin", "other:refs/heads/other"]);
    let cli_push = t.elapsed();
    drop(daemon);
    println!(
        "push:        ours {:8.1} ms for 20 commits (build + push)   git push {:8.1} ms (push only)   ratio {:.2}x   [first fetch of {files} files: {:.0} ms]",
        ms(ours_push),
        ms(cli_push),
        ours_push.as_secs_f64() / cli_push.as_secs_f64(),
        ms(first_fetch)
    );
    let _ = pushed_head;
}
