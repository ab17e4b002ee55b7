//! The git executor against real servers on loopback: git daemon (git://), OpenSSH (ssh://),
//! git http-backend behind lighttpd (http:// with basic and bearer auth), and file://.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use gitops_reverser_core::git_blob_id;
use gitops_reverser_core::io::{GitOpKind, GitResult, PlannedCommit};
use gitops_reverser_runtime::git::{execute, Credentials, GitExecutor, Workspace};
use support::*;

fn workspace() -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::new(dir.path().join("clones")).unwrap();
    (dir, ws)
}

fn push(
    ws: &Workspace,
    url: &str,
    creds: Option<&Credentials>,
    expected: Option<&str>,
    commits: Vec<PlannedCommit>,
) -> GitResult {
    let kind = GitOpKind::Push {
        expected_head: expected.map(String::from),
        commits,
    };
    execute(
        ws,
        &op(1, url, creds.map(|c| c.secret_name.as_str()), kind),
        creds,
    )
}

fn read(ws: &Workspace, url: &str, creds: Option<&Credentials>, folder: &str) -> GitResult {
    execute(
        ws,
        &op(
            2,
            url,
            creds.map(|c| c.secret_name.as_str()),
            GitOpKind::ReadPaths {
                folder: folder.into(),
            },
        ),
        creds,
    )
}

fn pushed(r: GitResult) -> String {
    match r {
        GitResult::Pushed { head, .. } => head,
        other => panic!("expected Pushed, got {other:?}"),
    }
}

fn failed(r: GitResult) -> (bool, String) {
    match r {
        GitResult::Failed {
            retryable, reason, ..
        } => (retryable, reason),
        other => panic!("expected Failed, got {other:?}"),
    }
}

fn creds(pairs: &[(&str, &str)]) -> Credentials {
    let data: BTreeMap<String, Vec<u8>> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect();
    Credentials::from_secret_data("repo-creds", &data).unwrap()
}

/// The raw commit object, as `git cat-file` prints it.
fn cat_commit(repo: &Path, id: &str) -> String {
    git(repo, &["cat-file", "commit", id])
}

/// A push to an empty repository, then incremental pushes, then a read, on any transport.
fn first_push_then_incremental(
    ws: &Workspace,
    url: &str,
    creds: Option<&Credentials>,
    bare: &Path,
) {
    assert_eq!(
        read(ws, url, creds, ""),
        GitResult::Paths {
            head: None,
            entries: vec![]
        },
        "an empty remote has no branch"
    );
    let c1 = commit(
        "alice",
        "[CREATE] v1/configmaps/team-a/app",
        1_700_000_000_123,
        &[
            ("v1/configmaps/team-a/app.yaml", Some("a: 1\n")),
            ("v1/configmaps/team-a/other.yaml", Some("o: 1\n")),
        ],
    );
    let h1 = pushed(push(ws, url, creds, None, vec![c1]));
    assert_eq!(
        head_of(bare, "main").as_deref(),
        Some(h1.as_str()),
        "the remote's branch is our head"
    );
    let c2 = commit(
        "bob",
        "[UPDATE] v1/configmaps/team-a/app",
        1_700_000_060_000,
        &[("v1/configmaps/team-a/app.yaml", Some("a: 2\n"))],
    );
    let c3 = commit(
        "alice",
        "[DELETE] v1/configmaps/team-a/other",
        1_700_000_061_000,
        &[("v1/configmaps/team-a/other.yaml", None)],
    );
    let h3 = pushed(push(ws, url, creds, Some(&h1), vec![c2, c3]));
    assert_eq!(git(bare, &["rev-list", "--count", &h3]).trim(), "3");
    assert_eq!(
        git(
            bare,
            &["show", &format!("{h3}:v1/configmaps/team-a/app.yaml")]
        ),
        "a: 2\n"
    );
    match read(ws, url, creds, "v1/configmaps") {
        GitResult::Paths { head, entries } => {
            assert_eq!(head.as_deref(), Some(h3.as_str()));
            assert_eq!(
                entries,
                vec![(
                    "v1/configmaps/team-a/app.yaml".to_string(),
                    git_blob_id(b"a: 2\n")
                )]
            );
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------- git daemon (git://)

/// A git daemon whose `r.git` got one commit from us (by alice, writing `a\n` to `path`), with the
/// workspace that pushed it and the pushed head.
fn daemon_after_first_push(
    path: &str,
) -> (
    Server,
    std::path::PathBuf,
    tempfile::TempDir,
    Workspace,
    String,
    String,
) {
    let server = git_daemon();
    let bare = bare_repo(server.dir.path(), "r.git");
    let (d, ws) = workspace();
    let url = format!("git://127.0.0.1:{}/r.git", server.port);
    let first = commit("alice", "[CREATE] a", 1_000, &[(path, Some("a\n"))]);
    let h1 = pushed(push(&ws, &url, None, None, vec![first]));
    (server, bare, d, ws, url, h1)
}

#[test]
fn git_daemon_first_push_incremental_commits_and_read() {
    let server = git_daemon();
    let bare = bare_repo(server.dir.path(), "r.git");
    let (_d, ws) = workspace();
    first_push_then_incremental(
        &ws,
        &format!("git://127.0.0.1:{}/r.git", server.port),
        None,
        &bare,
    );
}

#[test]
fn author_committer_timestamps_and_message_are_exactly_as_planned() {
    let server = git_daemon();
    let bare = bare_repo(server.dir.path(), "r.git");
    let (_d, ws) = workspace();
    let url = format!("git://127.0.0.1:{}/r.git", server.port);
    let mut c = commit(
        "system:serviceaccount:ci:deployer",
        "[UPDATE] apps/v1/deployments/team-a/web",
        1_700_000_000_999,
        &[("apps/v1/deployments/team-a/web.yaml", Some("x: 1\n"))],
    );
    c.author.email = "system-serviceaccount-ci-deployer@cluster.local".into();
    let head = pushed(push(&ws, &url, None, None, vec![c]));
    let raw = cat_commit(&bare, &head);
    let headers: Vec<&str> = raw.lines().take_while(|l| !l.is_empty()).collect();
    assert!(headers[0].starts_with("tree "));
    assert_eq!(headers[1], "author system:serviceaccount:ci:deployer <system-serviceaccount-ci-deployer@cluster.local> 1700000000 +0000");
    assert_eq!(
        headers[2],
        "committer GitOps Reverser <gitops-reverser@configbutler.ai> 1700000002 +0000"
    );
    let message = raw.split_once("\n\n").unwrap().1;
    assert_eq!(
        message,
        "[UPDATE] apps/v1/deployments/team-a/web\n\nReverser-Op: test-1700000000999\n"
    );
}

#[test]
fn a_push_on_a_stale_head_is_a_conflict_and_both_histories_are_kept() {
    let (_server, bare, _d, ws, url, h1) = daemon_after_first_push("v1/configmaps/ns/a.yaml");
    // Someone pushes after our last read: our tracking ref still says h1, so the executor pushes
    // without fetching first, and the server's advertised head gives the race away.
    let theirs = outside_commit(&bare, "main", "NOTES.md", "hello\n");
    let ours = vec![commit(
        "bob",
        "[UPDATE] a",
        2_000,
        &[("v1/configmaps/ns/a.yaml", Some("b\n"))],
    )];
    assert_eq!(
        push(&ws, &url, None, Some(&h1), ours.clone()),
        GitResult::Conflict {
            remote_head: Some(theirs.clone())
        }
    );
    assert_eq!(
        head_of(&bare, "main").as_deref(),
        Some(theirs.as_str()),
        "nothing of theirs was overwritten"
    );
    // The core re-plans the same writes on their head.
    let h2 = pushed(push(&ws, &url, None, Some(&theirs), ours));
    let log = git(&bare, &["log", "--format=%an %s", &h2]);
    assert_eq!(
        log,
        "bob [UPDATE] a\noutside outside edit of NOTES.md\nalice [CREATE] a\n"
    );
}

#[test]
fn an_update_the_server_rejects_as_stale_is_a_conflict() {
    let (_server, bare, _d, ws, url, h1) = daemon_after_first_push("a.yaml");
    let theirs = outside_commit(&bare, "side", "NOTES.md", "n\n");
    // Someone moves main after the server advertised it to us and before it applies our update:
    // our update names the old head, and the server refuses it (the race a client cannot see).
    // (Git forbids ref updates from a pre-receive hook's quarantine; the hook steps out of it.)
    install_hook(&bare, "pre-receive", format!("#!/bin/sh\nset -e\nrm -f \"$0\"\nenv -u GIT_QUARANTINE_PATH git update-ref refs/heads/main {theirs}\n"));
    let ours = vec![commit(
        "bob",
        "[UPDATE] a",
        2_000,
        &[("a.yaml", Some("b\n"))],
    )];
    assert_eq!(
        push(&ws, &url, None, Some(&h1), ours),
        GitResult::Conflict {
            remote_head: Some(theirs.clone())
        }
    );
    assert_eq!(head_of(&bare, "main"), Some(theirs), "their update stands");
}

#[test]
fn a_push_planned_on_an_unknown_head_fetches_and_reports_the_remote_head() {
    let server = git_daemon();
    let bare = bare_repo(server.dir.path(), "r.git");
    let theirs = outside_commit(&bare, "main", "README.md", "x\n");
    let (_d, ws) = workspace();
    let url = format!("git://127.0.0.1:{}/r.git", server.port);
    // The core believes the branch does not exist.
    let r = push(
        &ws,
        &url,
        None,
        None,
        vec![commit(
            "a",
            "[CREATE] x",
            1,
            &[("v1/x/ns/n.yaml", Some("1\n"))],
        )],
    );
    assert_eq!(
        r,
        GitResult::Conflict {
            remote_head: Some(theirs.clone())
        }
    );
    assert_eq!(head_of(&bare, "main"), Some(theirs));
}

#[test]
fn an_update_refused_by_a_server_hook_is_a_failure_a_user_must_fix() {
    let server = git_daemon();
    let bare = bare_repo(server.dir.path(), "r.git");
    install_hook(
        &bare,
        "pre-receive",
        "#!/bin/sh\necho 'main is protected' >&2\nexit 1\n",
    );
    let (_d, ws) = workspace();
    let url = format!("git://127.0.0.1:{}/r.git", server.port);
    let (retryable, reason) = failed(push(
        &ws,
        &url,
        None,
        None,
        vec![commit("a", "[CREATE] x", 1, &[("x", Some("1\n"))])],
    ));
    assert!(!retryable);
    assert!(
        reason.contains("refused the update of refs/heads/main") && reason.contains("hook"),
        "{reason}"
    );
    assert_eq!(head_of(&bare, "main"), None);
}

#[test]
fn a_connection_lost_after_the_server_took_the_update_is_unknown_and_verify_finds_it() {
    let server = git_daemon();
    let bare = bare_repo(server.dir.path(), "r.git");
    // The server updates the branch, then dies before it can report: the client cannot know.
    let hook = install_hook(
        &bare,
        "reference-transaction",
        "#!/bin/sh\n[ \"$1\" = committed ] && kill -9 $PPID\nexit 0\n",
    );
    let (_d, ws) = workspace();
    let url = format!("git://127.0.0.1:{}/r.git", server.port);
    let c = commit("alice", "[CREATE] x", 7, &[("v1/x/ns/n.yaml", Some("1\n"))]);
    assert_eq!(push(&ws, &url, None, None, vec![c]), GitResult::Unknown);
    let landed_head = head_of(&bare, "main").expect("the update landed");
    std::fs::remove_file(&hook).unwrap();
    let verify = |tag: &str| {
        execute(
            &ws,
            &op(
                3,
                &url,
                None,
                GitOpKind::Verify {
                    expected_head: None,
                    op_tag: tag.into(),
                },
            ),
            None,
        )
    };
    assert_eq!(
        verify("test-7"),
        GitResult::Verified {
            head: Some(landed_head.clone()),
            landed: true
        }
    );
    assert_eq!(
        verify("test-8"),
        GitResult::Verified {
            head: Some(landed_head),
            landed: false
        }
    );
}

#[test]
fn a_repository_that_does_not_exist_fails_and_says_so() {
    let server = git_daemon();
    let (_d, ws) = workspace();
    let (retryable, reason) = failed(read(
        &ws,
        &format!("git://127.0.0.1:{}/missing.git", server.port),
        None,
        "",
    ));
    assert!(!retryable, "{reason}");
    assert!(reason.contains("does not exist"), "{reason}");
}

#[test]
fn an_unreachable_host_is_retryable() {
    let (_d, ws) = workspace();
    let port = free_port();
    let (retryable, reason) = failed(read(
        &ws,
        &format!("git://127.0.0.1:{port}/r.git"),
        None,
        "",
    ));
    assert!(retryable, "{reason}");
    assert!(reason.contains("cannot reach"), "{reason}");
}

#[test]
fn the_persistent_clone_survives_damage() {
    let server = git_daemon();
    let bare = bare_repo(server.dir.path(), "r.git");
    let (d, ws) = workspace();
    let url = format!("git://127.0.0.1:{}/r.git", server.port);
    let h1 = pushed(push(
        &ws,
        &url,
        None,
        None,
        vec![commit("a", "[CREATE] x", 1, &[("x", Some("1\n"))])],
    ));
    // Wipe the clone's contents: the next op starts again from the remote.
    for e in std::fs::read_dir(d.path().join("clones")).unwrap() {
        let p = e.unwrap().path();
        std::fs::remove_dir_all(p.join("objects")).unwrap();
    }
    let h2 = pushed(push(
        &ws,
        &url,
        None,
        Some(&h1),
        vec![commit("a", "[UPDATE] x", 2, &[("x", Some("2\n"))])],
    ));
    assert_eq!(head_of(&bare, "main"), Some(h2));
}

// ---------------------------------------------------------------- file://

/// A bare repository reached by a file:// URL, and a workspace: (repo dir, bare path, workspace
/// dir, workspace, URL).
fn file_remote() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    tempfile::TempDir,
    Workspace,
    String,
) {
    let dir = tempfile::tempdir().unwrap();
    let bare = bare_repo(dir.path(), "r.git");
    let (d, ws) = workspace();
    let url = format!("file://{}", bare.display());
    (dir, bare, d, ws, url)
}

#[test]
fn file_urls_push_and_conflict_like_any_remote() {
    let (_dir, bare, _d, ws, url) = file_remote();
    first_push_then_incremental(&ws, &url, None, &bare);
    let head = head_of(&bare, "main").unwrap();
    let theirs = outside_commit(&bare, "main", "x", "y\n");
    let r = push(
        &ws,
        &url,
        None,
        Some(&head),
        vec![commit("a", "[UPDATE] z", 9, &[("z", Some("1\n"))])],
    );
    assert_eq!(
        r,
        GitResult::Conflict {
            remote_head: Some(theirs)
        }
    );
}

// ---------------------------------------------------------------- sshd (ssh://)

fn ssh_creds(key: &str, passphrase: Option<&str>, known_hosts: &str) -> Credentials {
    let mut pairs = vec![("ssh-privatekey", key), ("known_hosts", known_hosts)];
    if let Some(p) = passphrase {
        pairs.push(("ssh-password", p));
    }
    creds(&pairs)
}

#[test]
fn ssh_with_a_deploy_key_and_verified_host_key() {
    let (server, keys) = sshd();
    let bare = bare_repo(server.dir.path(), "r.git");
    let (_d, ws) = workspace();
    let url = format!("ssh://root@127.0.0.1:{}{}", server.port, bare.display());
    let c = ssh_creds(&keys.client_private, None, &keys.known_hosts);
    first_push_then_incremental(&ws, &url, Some(&c), &bare);
}

#[test]
fn ssh_with_an_encrypted_key_and_its_passphrase() {
    let (server, keys) = sshd();
    let bare = bare_repo(server.dir.path(), "r.git");
    let (_d, ws) = workspace();
    let url = format!("ssh://root@127.0.0.1:{}{}", server.port, bare.display());
    let good = ssh_creds(
        &keys.encrypted_private,
        Some(keys.passphrase),
        &keys.known_hosts,
    );
    // libssh2 cannot derive the public key of an encrypted key; it is read from the key's header.
    let public = std::fs::read_to_string(server.dir.path().join("encrypted.pub")).unwrap();
    let public: Vec<&str> = public.split_whitespace().take(2).collect();
    assert_eq!(
        good.ssh.as_ref().unwrap().public_key.as_deref(),
        Some(public.join(" ").as_str())
    );
    assert!(matches!(
        read(&ws, &url, Some(&good), ""),
        GitResult::Paths { head: None, .. }
    ));
    let bad = ssh_creds(
        &keys.encrypted_private,
        Some("wrong passphrase"),
        &keys.known_hosts,
    );
    let (retryable, reason) = failed(read(&ws, &url, Some(&bad), ""));
    assert!(!retryable, "{reason}");
    assert!(
        reason.contains("ssh-password"),
        "the reason points at the passphrase: {reason}"
    );
}

#[test]
fn ssh_with_a_key_the_server_does_not_accept_fails_closed() {
    let (server, keys) = sshd();
    let bare = bare_repo(server.dir.path(), "r.git");
    let (_d, ws) = workspace();
    let url = format!("ssh://root@127.0.0.1:{}{}", server.port, bare.display());
    let c = ssh_creds(&keys.stranger_private, None, &keys.known_hosts);
    let (retryable, reason) = failed(push(
        &ws,
        &url,
        Some(&c),
        None,
        vec![commit("a", "[CREATE] x", 1, &[("x", Some("1\n"))])],
    ));
    assert!(!retryable);
    assert!(
        reason.contains("refused the key in Secret repo-creds"),
        "{reason}"
    );
    assert_eq!(head_of(&bare, "main"), None);
}

#[test]
fn ssh_to_a_host_missing_from_known_hosts_fails_closed_with_its_fingerprint() {
    let (server, keys) = sshd();
    let bare = bare_repo(server.dir.path(), "r.git");
    let (_d, ws) = workspace();
    let url = format!("ssh://root@127.0.0.1:{}{}", server.port, bare.display());
    let unrelated = keys
        .wrong_known_hosts
        .replace("[127.0.0.1]", "[git.example.com]");
    let c = ssh_creds(&keys.client_private, None, &unrelated);
    let (retryable, reason) = failed(push(
        &ws,
        &url,
        Some(&c),
        None,
        vec![commit("a", "[CREATE] x", 1, &[("x", Some("1\n"))])],
    ));
    assert!(!retryable);
    assert!(
        reason.contains("not in known_hosts") && reason.contains("SHA256:"),
        "{reason}"
    );
    let expected = Command::new("ssh-keygen")
        .args([
            "-l",
            "-f",
            server.dir.path().join("host_ed25519.pub").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let fp = String::from_utf8(expected.stdout).unwrap();
    let fp = fp.split_whitespace().nth(1).unwrap();
    assert!(
        reason.contains(fp),
        "the reason shows the server's real fingerprint {fp}: {reason}"
    );
    assert_eq!(
        head_of(&bare, "main"),
        None,
        "nothing was pushed to an unverified host"
    );
}

#[test]
fn ssh_to_a_host_whose_key_changed_fails_closed() {
    let (server, keys) = sshd();
    let bare = bare_repo(server.dir.path(), "r.git");
    let (_d, ws) = workspace();
    let url = format!("ssh://root@127.0.0.1:{}{}", server.port, bare.display());
    let c = ssh_creds(&keys.client_private, None, &keys.wrong_known_hosts);
    let (retryable, reason) = failed(read(&ws, &url, Some(&c), ""));
    assert!(!retryable);
    assert!(reason.contains("does not match known_hosts"), "{reason}");
}

#[test]
fn ssh_without_credentials_is_refused_before_connecting() {
    let (_d, ws) = workspace();
    let (retryable, reason) = failed(read(&ws, "git@github.com:org/repo.git", None, ""));
    assert!(!retryable);
    assert!(
        reason.contains("ssh-privatekey and known_hosts"),
        "{reason}"
    );
}

#[test]
fn ssh_to_a_repository_that_does_not_exist() {
    let (server, keys) = sshd();
    let (_d, ws) = workspace();
    let url = format!("ssh://root@127.0.0.1:{}/nowhere/r.git", server.port);
    let c = ssh_creds(&keys.client_private, None, &keys.known_hosts);
    let (retryable, reason) = failed(read(&ws, &url, Some(&c), ""));
    assert!(!retryable, "{reason}");
    assert!(reason.contains("does not exist"), "{reason}");
}

// ---------------------------------------------------------------- smart HTTP

#[test]
fn http_basic_auth_push_and_read() {
    let server = http_server();
    let bare = bare_repo(&server.dir.path().join("repos"), "r.git");
    let (_d, ws) = workspace();
    let url = format!("http://127.0.0.1:{}/basic/r.git", server.port);
    let c = creds(&[("username", HTTP_USER), ("password", HTTP_PASSWORD)]);
    first_push_then_incremental(&ws, &url, Some(&c), &bare);
}

#[test]
fn http_with_a_wrong_password_fails_and_does_not_loop() {
    let server = http_server();
    bare_repo(&server.dir.path().join("repos"), "r.git");
    let (_d, ws) = workspace();
    let url = format!("http://127.0.0.1:{}/basic/r.git", server.port);
    let c = creds(&[("username", HTTP_USER), ("password", "pw-wrong-5e6f")]);
    let (retryable, reason) = failed(read(&ws, &url, Some(&c), ""));
    assert!(!retryable);
    assert!(
        reason.contains("refused the username and password in Secret repo-creds"),
        "{reason}"
    );
    let (retryable, reason) = failed(read(&ws, &url, None, ""));
    assert!(!retryable);
    assert!(reason.contains("asks for credentials"), "{reason}");
}

#[test]
fn http_bearer_token() {
    let server = http_server();
    let bare = bare_repo(&server.dir.path().join("repos"), "r.git");
    let (_d, ws) = workspace();
    let url = format!("http://127.0.0.1:{}/bearer/r.git", server.port);
    let good = creds(&[("bearerToken", HTTP_TOKEN)]);
    first_push_then_incremental(&ws, &url, Some(&good), &bare);
    let bad = creds(&[("bearerToken", "tok-wrong-77aa")]);
    let (retryable, reason) = failed(read(&ws, &url, Some(&bad), ""));
    assert!(!retryable, "{reason}");
}

#[test]
fn https_fails_closed_on_an_untrusted_certificate_and_works_once_it_is_trusted() {
    let server = https_server();
    let bare = bare_repo(&server.dir.path().join("repos"), "r.git");
    let (_d, ws) = workspace();
    let url = format!("https://127.0.0.1:{}/basic/r.git", server.port);
    let c = creds(&[("username", HTTP_USER), ("password", HTTP_PASSWORD)]);
    let (retryable, reason) = failed(read(&ws, &url, Some(&c), ""));
    assert!(!retryable, "{reason}");
    assert!(reason.contains("TLS certificate"), "{reason}");
    // Trusting the server's certificate (process-wide, like a CA bundle in the image) makes it work.
    // No other test of this binary uses TLS.
    unsafe { git2::opts::set_ssl_cert_file(server.dir.path().join("cert.pem")).unwrap() };
    first_push_then_incremental(&ws, &url, Some(&c), &bare);
}

#[test]
fn a_new_branch_is_created_beside_existing_ones() {
    let server = git_daemon();
    let bare = bare_repo(server.dir.path(), "r.git");
    let main = outside_commit(&bare, "main", "README.md", "x\n");
    let (_d, ws) = workspace();
    let url = format!("git://127.0.0.1:{}/r.git", server.port);
    let mut dev = op(
        5,
        &url,
        None,
        GitOpKind::ReadPaths {
            folder: String::new(),
        },
    );
    dev.branch = "dev".into();
    assert_eq!(
        execute(&ws, &dev, None),
        GitResult::Paths {
            head: None,
            entries: vec![]
        }
    );
    dev.kind = GitOpKind::Push {
        expected_head: None,
        commits: vec![commit(
            "a",
            "[CREATE] x",
            1,
            &[("v1/x/ns/n.yaml", Some("1\n"))],
        )],
    };
    let head = pushed(execute(&ws, &dev, None));
    assert_eq!(head_of(&bare, "dev"), Some(head));
    assert_eq!(
        head_of(&bare, "main"),
        Some(main),
        "other branches are untouched"
    );
}

#[test]
fn http_repository_that_does_not_exist() {
    let server = http_server();
    let (_d, ws) = workspace();
    let url = format!("http://127.0.0.1:{}/basic/missing.git", server.port);
    let c = creds(&[("username", HTTP_USER), ("password", HTTP_PASSWORD)]);
    let (retryable, reason) = failed(read(&ws, &url, Some(&c), ""));
    assert!(!retryable, "{reason}");
    assert!(reason.contains("does not exist"), "{reason}");
}

// ---------------------------------------------------------------- credentials never leak

/// Every log line of this test binary.
fn captured_logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf: Arc<Mutex<Vec<u8>>> = Arc::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Sink(writer.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        buf
    })
}

struct Sink(Arc<Mutex<Vec<u8>>>);
impl std::io::Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credential_appears_in_any_result_or_log_line() {
    let logs = captured_logs();
    let http = http_server();
    bare_repo(&http.dir.path().join("repos"), "r.git");
    let (ssh, keys) = sshd();
    let d = tempfile::tempdir().unwrap();
    let exec = GitExecutor::new(d.path()).unwrap();
    let password = "pw-LEAKCHECK-1b2c3d";
    let token = "tok-LEAKCHECK-4e5f6a";
    let passphrase = "pp-LEAKCHECK-7a8b9c";
    let cases: Vec<(String, Credentials)> = vec![
        (
            format!("http://127.0.0.1:{}/basic/r.git", http.port),
            creds(&[("username", HTTP_USER), ("password", password)]),
        ),
        (
            format!(
                "http://{HTTP_USER}:{password}@127.0.0.1:{}/basic/missing.git",
                http.port
            ),
            creds(&[("username", HTTP_USER), ("password", password)]),
        ),
        (
            format!("http://127.0.0.1:{}/bearer/r.git", http.port),
            creds(&[("bearerToken", token)]),
        ),
        (
            format!("http://127.0.0.1:{}/basic/r.git", free_port()),
            creds(&[("password", password)]),
        ),
        (
            format!("ssh://root@127.0.0.1:{}/nowhere.git", ssh.port),
            ssh_creds(&keys.encrypted_private, Some(passphrase), &keys.known_hosts),
        ),
        (
            format!("ssh://root@127.0.0.1:{}/nowhere.git", ssh.port),
            ssh_creds(&keys.stranger_private, None, &keys.known_hosts),
        ),
        (
            format!("ssh://root@127.0.0.1:{}/nowhere.git", ssh.port),
            ssh_creds(&keys.client_private, None, &keys.wrong_known_hosts),
        ),
    ];
    let mut secrets: Vec<String> = vec![password.into(), token.into(), passphrase.into()];
    for key in [
        &keys.encrypted_private,
        &keys.stranger_private,
        &keys.client_private,
    ] {
        secrets.extend(
            key.lines()
                .filter(|l| !l.starts_with("-----"))
                .map(String::from),
        );
    }
    let mut reasons = Vec::new();
    for (i, (url, c)) in cases.into_iter().enumerate() {
        let kind = GitOpKind::Push {
            expected_head: None,
            commits: vec![commit("a", "[CREATE] x", 1, &[("x", Some("1\n"))])],
        };
        let result = exec
            .run(
                op(i as u64, &url, Some("repo-creds"), kind),
                Some(Arc::new(c)),
                None,
            )
            .await;
        let (_, reason) = failed(result);
        reasons.push(reason);
    }
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("git op failed"),
        "the failures were logged: {logs}"
    );
    for s in &secrets {
        for r in &reasons {
            assert!(!r.contains(s.as_str()), "a result leaks a credential: {r}");
        }
        assert!(!logs.contains(s.as_str()), "the log leaks a credential");
    }
}

use std::process::Command;

// ---------------------------------------------------------------- the async side

#[tokio::test(flavor = "current_thread")]
async fn git_ops_leave_the_async_thread_free() {
    let server = git_daemon();
    let bare = bare_repo(server.dir.path(), "r.git");
    let d = tempfile::tempdir().unwrap();
    let exec = GitExecutor::new(d.path()).unwrap();
    // On this single-threaded runtime another task can only run if the git op is not executed on
    // the runtime's own thread.
    let ticks = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = ticks.clone();
    let ticker = tokio::spawn(async move {
        loop {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::task::yield_now().await;
        }
    });
    let url = format!("git://127.0.0.1:{}/r.git", server.port);
    let kind = GitOpKind::Push {
        expected_head: None,
        commits: vec![commit("a", "[CREATE] x", 1, &[("x", Some("1\n"))])],
    };
    let result = exec.run(op(1, &url, None, kind), None, None).await;
    let seen = ticks.load(std::sync::atomic::Ordering::Relaxed);
    ticker.abort();
    let head = pushed(result);
    assert_eq!(head_of(&bare, "main"), Some(head));
    assert!(seen > 0, "the runtime's thread was blocked while git ran");
}

// ---------------------------------------------------------------- files the core hands over

#[test]
fn a_push_renders_each_object_and_reports_the_blob_ids_a_listing_then_shows() {
    use gitops_reverser_core::io::FileBody;
    use gitops_reverser_core::RawObject;
    use gitops_reverser_core::TypeRules;
    let (_dir, bare, _d, ws, url) = file_remote();
    // As the watch delivers them: server-set fields and a Secret's values that must never land.
    let configmap = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"app","namespace":"team-a","resourceVersion":"7","uid":"u1","managedFields":[{"manager":"kubectl"}]},"data":{"k":"v"}}"#;
    let secret = br#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db","namespace":"team-a"},"data":{"password":"aHVudGVyMg=="}}"#;
    let object = |json: &[u8], rules| Some(FileBody::Object(RawObject::new(json.to_vec()), rules));
    let mut c = commit("alice", "[CREATE] two", 1_000, &[]);
    // Planned order is by path; the blob ids come back in it.
    c.writes = vec![
        (
            "v1/configmaps/team-a/app.yaml".into(),
            object(configmap, TypeRules::Plain),
        ),
        (
            "v1/secrets/team-a/db.yaml".into(),
            object(secret, TypeRules::Secret),
        ),
    ];
    let (head, blobs) = match push(&ws, &url, None, None, vec![c]) {
        GitResult::Pushed { head, blobs } => (head, blobs),
        other => panic!("expected Pushed, got {other:?}"),
    };
    let rendered = |json: &[u8], rules| gitops_reverser_core::render_object(json, rules).unwrap();
    let app = git(
        &bare,
        &["show", &format!("{head}:v1/configmaps/team-a/app.yaml")],
    );
    assert_eq!(
        app.as_bytes(),
        rendered(configmap, TypeRules::Plain).as_slice()
    );
    assert!(!app.contains("managedFields") && !app.contains("resourceVersion"));
    let db = git(
        &bare,
        &["show", &format!("{head}:v1/secrets/team-a/db.yaml")],
    );
    assert!(
        db.contains("<redacted>") && !db.contains("aHVudGVyMg=="),
        "{db}"
    );
    assert_eq!(
        blobs,
        vec![vec![
            Some(git_blob_id(&rendered(configmap, TypeRules::Plain))),
            Some(git_blob_id(&rendered(secret, TypeRules::Secret)))
        ]]
    );
    match read(&ws, &url, None, "") {
        GitResult::Paths { entries, .. } => {
            let listed: Vec<[u8; 20]> = entries.into_iter().map(|(_, b)| b).collect();
            let reported: Vec<[u8; 20]> = blobs[0].iter().map(|b| b.unwrap()).collect();
            assert_eq!(
                listed, reported,
                "the core recognises its own files in a listing"
            );
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------- clone garbage collection

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clone_no_branch_uses_goes_at_the_second_look_and_a_used_one_stays() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (
        bare_repo(dir.path(), "old.git"),
        bare_repo(dir.path(), "new.git"),
    );
    let d = tempfile::tempdir().unwrap();
    let exec = GitExecutor::new(d.path()).unwrap();
    let ws = Workspace::new(d.path()).unwrap();
    let read = |url: &str| {
        op(
            1,
            url,
            None,
            GitOpKind::ReadPaths {
                folder: String::new(),
            },
        )
    };
    let (old_url, new_url) = (
        format!("file://{}", old.display()),
        format!("file://{}", new.display()),
    );
    // The GitRepoConfig's URL changed from old to new: both have clones now.
    for url in [&old_url, &new_url] {
        assert!(matches!(
            exec.run(read(url), None, None).await,
            GitResult::Paths { .. }
        ));
    }
    let (old_dir, new_dir) = (ws.clone_dir(&read(&old_url)), ws.clone_dir(&read(&new_url)));
    assert!(old_dir.is_dir() && new_dir.is_dir());
    let o = read(&new_url);
    let used = vec![(o.repo.clone(), new_url.clone(), o.branch.clone())];

    assert!(exec.collect_garbage(&used).await.is_empty(), "first look");
    assert!(old_dir.is_dir());
    assert_eq!(exec.collect_garbage(&used).await, vec![old_dir.clone()]);
    assert!(!old_dir.exists() && new_dir.is_dir());

    // An op for the removed clone later simply clones again.
    assert!(matches!(
        exec.run(read(&old_url), None, None).await,
        GitResult::Paths { .. }
    ));
    assert!(old_dir.is_dir());
    // Used again before its second look: it stays.
    assert!(exec.collect_garbage(&used).await.is_empty());
    let both = vec![
        used[0].clone(),
        (o.repo.clone(), old_url.clone(), o.branch.clone()),
    ];
    assert!(exec.collect_garbage(&both).await.is_empty());
    assert!(old_dir.is_dir() && new_dir.is_dir());
}

#[test]
fn clone_directories_of_different_tenants_never_share_a_name() {
    let (_d, ws) = workspace();
    let mut o = op(
        1,
        "file:///r.git",
        None,
        GitOpKind::ReadPaths {
            folder: String::new(),
        },
    );
    let a = ws.clone_dir(&o);
    o.repo.namespace = "team-b".into();
    let b = ws.clone_dir(&o);
    assert_ne!(a, b);
    // The hashed part is a SHA-256 prefix of 128 bits, not a 64-bit hash a tenant could collide.
    let name = a.file_name().unwrap().to_str().unwrap();
    let hash = name.rsplit('-').next().unwrap();
    assert_eq!(hash.len(), 32);
    assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
}

// ---------------------------------------------------------------- redirects

/// An HTTP server on loopback address `ip` that answers every request with `answer(head)` and
/// keeps each request's head: (port, heads).
fn recording_server(
    ip: &str,
    answer: impl Fn(&str) -> String + Send + 'static,
) -> (u16, Arc<Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind((ip, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let kept = heads.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(mut tcp) = tcp else { return };
            let mut head = String::new();
            let mut reader = BufReader::new(tcp.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let reply = answer(&head);
            kept.lock().unwrap().push(head);
            let _ = tcp.write_all(reply.as_bytes());
        }
    });
    (port, heads)
}

#[test]
fn a_redirect_to_another_host_is_not_followed_and_the_token_stays_home() {
    // Another host: 127.0.0.2 is loopback too, and a different host name to libgit2. (A redirect
    // within the same host, to another port or path, is followed, as git itself does.)
    let (elsewhere, seen_elsewhere) = recording_server("127.0.0.2", |_| {
        "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into()
    });
    let (home, seen_home) = recording_server("127.0.0.1", move |head| {
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
        format!(
            "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.2:{elsewhere}{path}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
    });
    let (_d, ws) = workspace();
    let token = "tok-REDIRECT-9f8e7d";
    let c = creds(&[("bearerToken", token)]);
    let url = format!("http://127.0.0.1:{home}/r.git");
    let r = read(&ws, &url, Some(&c), "");
    let GitResult::Failed { cause, reason, .. } = r else {
        panic!("expected a failure, got {r:?}");
    };
    assert_eq!(cause, "RedirectRefused", "{reason}");
    assert!(reason.contains("redirect"), "{reason}");
    assert!(
        !seen_home.lock().unwrap().is_empty(),
        "the remote was asked"
    );
    assert_eq!(
        *seen_elsewhere.lock().unwrap(),
        Vec::<String>::new(),
        "nothing, and no token, reached the other host"
    );
}
