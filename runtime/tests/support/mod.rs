//! Real git servers on loopback for the executor's tests: `git daemon`, OpenSSH's `sshd` and
//! `git http-backend` behind lighttpd, each started in a private temporary directory and killed on
//! drop. `.ci/install-test-deps` installs what they need.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub mod cluster;

use gitops_reverser_core::config::NamespacedName;
use gitops_reverser_core::io::{FileBody, GitOp, GitOpKind, Identity, PlannedCommit};

/// How long a server may take to say it is ready.
pub const READY_TIMEOUT_MS: u64 = 20_000;

/// Finds a program or fails the test with the fix.
pub fn require(program: &str, also: &[&str]) -> PathBuf {
    let in_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(program))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    in_path
        .into_iter()
        .chain(also.iter().map(PathBuf::from))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{program} is not installed: run .ci/install-test-deps (the git executor's tests need real servers)"))
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs git, asserts success and returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "outside")
        .env("GIT_AUTHOR_EMAIL", "outside@example.com")
        .env("GIT_COMMITTER_NAME", "outside")
        .env("GIT_COMMITTER_EMAIL", "outside@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A bare repository `name` under `root`, accepting pushes from anyone who reaches it.
pub fn bare_repo(root: &Path, name: &str) -> PathBuf {
    let path = root.join(name);
    std::fs::create_dir_all(&path).unwrap();
    git(&path, &["init", "-q", "--bare", "-b", "main"]);
    git(&path, &["config", "http.receivepack", "true"]);
    git(&path, &["config", "receive.denyNonFastForwards", "true"]);
    path
}

/// Makes a commit on `branch` of the bare repository at `repo` as an outside writer would
/// (a human with a working tree), and returns its id.
pub fn outside_commit(repo: &Path, branch: &str, file: &str, content: &str) -> String {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    git(w, &["init", "-q", "-b", branch]);
    git(w, &["remote", "add", "origin", repo.to_str().unwrap()]);
    let has_branch = !git(w, &["ls-remote", "origin", &format!("refs/heads/{branch}")])
        .trim()
        .is_empty();
    if has_branch {
        git(w, &["fetch", "-q", "origin", branch]);
        git(w, &["reset", "-q", "--hard", "FETCH_HEAD"]);
    }
    let path = w.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, content).unwrap();
    git(w, &["add", file]);
    git(
        w,
        &["commit", "-q", "-m", &format!("outside edit of {file}")],
    );
    git(
        w,
        &["push", "-q", "origin", &format!("HEAD:refs/heads/{branch}")],
    );
    git(w, &["rev-parse", "HEAD"]).trim().to_string()
}

/// Installs an executable hook `name` with `script` in the bare repository at `repo`.
pub fn install_hook(repo: &Path, name: &str, script: impl AsRef<str>) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let hook = repo.join("hooks").join(name);
    std::fs::write(&hook, script.as_ref()).unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    hook
}

/// The head of `branch` in the bare repository at `repo`, if any.
pub fn head_of(repo: &Path, branch: &str) -> Option<String> {
    let out = Command::new("git")
        .args([
            "rev-parse",
            "--verify",
            "-q",
            &format!("refs/heads/{branch}"),
        ])
        .current_dir(repo)
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).unwrap().trim().to_string())
}

/// A planned commit as the core makes them.
pub fn commit(
    author: &str,
    message: &str,
    time_ms: i64,
    writes: &[(&str, Option<&str>)],
) -> PlannedCommit {
    PlannedCommit {
        author: Identity {
            name: author.into(),
            email: format!("{author}@cluster.local"),
        },
        author_time_ms: time_ms,
        committer: Identity {
            name: "GitOps Reverser".into(),
            email: "gitops-reverser@configbutler.ai".into(),
        },
        commit_time_ms: time_ms + 1_500,
        message: format!("{message}\n\nReverser-Op: test-{time_ms}\n"),
        writes: writes
            .iter()
            .map(|(p, c)| {
                let file = c.map(|c| FileBody::Yaml(std::sync::Arc::from(c.as_bytes())));
                (p.to_string(), file)
            })
            .collect(),
    }
}

/// A git op on `url`'s `main` branch.
pub fn op(op_id: u64, url: &str, secret: Option<&str>, kind: GitOpKind) -> GitOp {
    GitOp {
        op_id,
        repo: NamespacedName {
            namespace: "team-a".into(),
            name: "repo".into(),
        },
        repo_url: url.into(),
        secret_name: secret.map(String::from),
        sealing: None,
        signing_secret: None,
        branch: "main".into(),
        kind,
    }
}

/// A server process, killed on drop.
pub struct Server {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its private directory (repositories, keys, configuration).
    pub dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `child`'s stderr prints a line containing `marker`.
fn await_line(child: &mut Child, marker: &'static str, what: &str) {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(marker) {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_millis(READY_TIMEOUT_MS))
        .unwrap_or_else(|_| panic!("{what} did not print {marker:?} within {READY_TIMEOUT_MS} ms"));
}

/// Waits until something accepts connections on `port`.
fn await_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_millis(READY_TIMEOUT_MS);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `git daemon` serving `dir` with pushes enabled.
pub fn git_daemon() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // git-daemon itself, not `git daemon`: the wrapper would leave the daemon running when killed.
    let daemon = PathBuf::from(git(dir.path(), &["--exec-path"]).trim()).join("git-daemon");
    let mut child = Command::new(daemon)
        .args([
            "--reuseaddr",
            "--verbose",
            "--export-all",
            "--enable=receive-pack",
            "--informative-errors",
            "--listen=127.0.0.1",
            &format!("--port={port}"),
            &format!("--base-path={}", dir.path().display()),
            dir.path().to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("git daemon starts");
    await_line(&mut child, "Ready to rumble", "git daemon");
    Server { child, port, dir }
}

/// Keys of an sshd under test.
pub struct SshKeys {
    /// The client key sshd accepts (OpenSSH format).
    pub client_private: String,
    /// Another key it does not accept.
    pub stranger_private: String,
    /// An encrypted key it accepts, and its passphrase.
    pub encrypted_private: String,
    /// The passphrase of `encrypted_private`.
    pub passphrase: &'static str,
    /// `ssh-keyscan -H` of the server: hashed known_hosts lines.
    pub known_hosts: String,
    /// A known_hosts naming the server with a different key.
    pub wrong_known_hosts: String,
}

fn keygen(dir: &Path, name: &str, passphrase: &str) -> (String, String) {
    let path = dir.join(name);
    let out = Command::new(require("ssh-keygen", &[]))
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            passphrase,
            "-C",
            name,
            "-f",
            path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        std::fs::read_to_string(&path).unwrap(),
        std::fs::read_to_string(path.with_extension("pub")).unwrap(),
    )
}

/// OpenSSH's sshd on a high port: key-only authentication for root, a generated host key.
pub fn sshd() -> (Server, SshKeys) {
    let sshd = require("sshd", &["/usr/sbin/sshd"]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let host_key = d.join("host_ed25519");
    keygen(d, "host_ed25519", "");
    let (client_private, client_public) = keygen(d, "client", "");
    let (stranger_private, _) = keygen(d, "stranger", "");
    let passphrase = "correct horse battery staple";
    let (encrypted_private, encrypted_public) = keygen(d, "encrypted", passphrase);
    let (_, other_host_public) = keygen(d, "other_host", "");
    std::fs::write(
        d.join("authorized_keys"),
        format!("{client_public}{encrypted_public}"),
    )
    .unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPidFile none\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nLogLevel VERBOSE\nSetEnv PATH={}\n",
        host_key.display(),
        d.join("authorized_keys").display(),
        std::env::var("PATH").unwrap_or_default(),
    );
    std::fs::write(d.join("sshd_config"), config).unwrap();
    let mut child = Command::new(sshd)
        .args(["-D", "-e", "-f", d.join("sshd_config").to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sshd starts");
    await_line(&mut child, "Server listening on", "sshd");
    let scan = Command::new(require("ssh-keyscan", &[]))
        .args(["-H", "-t", "ed25519", "-p", &port.to_string(), "127.0.0.1"])
        .output()
        .unwrap();
    let known_hosts = String::from_utf8(scan.stdout).unwrap();
    assert!(
        known_hosts.contains("|1|"),
        "ssh-keyscan -H printed hashed lines: {known_hosts:?}"
    );
    let other = other_host_public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let wrong_known_hosts = format!("[127.0.0.1]:{port} {other}\n");
    let keys = SshKeys {
        client_private,
        stranger_private,
        encrypted_private,
        passphrase,
        known_hosts,
        wrong_known_hosts,
    };
    (Server { child, port, dir }, keys)
}

/// Credentials for the HTTP server.
pub const HTTP_USER: &str = "reverser";
/// The accepted password.
pub const HTTP_PASSWORD: &str = "pw-9f2c7e1b-accepted";
/// The accepted bearer token.
pub const HTTP_TOKEN: &str = "tok-4d1a8b3e-accepted";

/// `git http-backend` behind lighttpd: `/basic/` needs basic auth, `/bearer/` a bearer token.
pub fn http_server() -> Server {
    web_server(false)
}

/// The same over TLS with a self-signed certificate for 127.0.0.1, written to `dir/cert.pem`.
pub fn https_server() -> Server {
    web_server(true)
}

/// A self-signed certificate for 127.0.0.1 (and `localhost`) at `cert`, its key at `key`.
pub fn self_signed_cert(cert: &Path, key: &Path) {
    let out = Command::new(require("openssl", &[]))
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=127.0.0.1"])
        .args([
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
        ])
        .arg(key)
        .arg("-out")
        .arg(cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn web_server(tls: bool) -> Server {
    let lighttpd = require("lighttpd", &["/usr/sbin/lighttpd"]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let tls_config = if tls {
        self_signed_cert(&d.join("cert.pem"), &d.join("key.pem"));
        format!(
            "server.modules += (\"mod_openssl\")\nssl.engine = \"enable\"\nssl.pemfile = \"{}\"\nssl.privkey = \"{}\"\n",
            d.join("cert.pem").display(),
            d.join("key.pem").display()
        )
    } else {
        String::new()
    };
    let exec_path = git(d, &["--exec-path"]);
    let backend = format!("{}/git-http-backend", exec_path.trim());
    std::fs::create_dir_all(d.join("repos")).unwrap();
    std::fs::write(d.join("users"), format!("{HTTP_USER}:{HTTP_PASSWORD}\n")).unwrap();
    let config = format!(
        r#"server.document-root = "{root}"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{root}/error.log"
server.modules = ("mod_access", "mod_alias", "mod_auth", "mod_authn_file", "mod_setenv", "mod_cgi")
auth.backend = "plain"
auth.backend.plain.userfile = "{root}/users"
setenv.add-environment = ("GIT_PROJECT_ROOT" => "{root}/repos", "GIT_HTTP_EXPORT_ALL" => "1")
alias.url = ("/basic" => "{backend}", "/bearer" => "{backend}")
cgi.assign = ("" => "")
$HTTP["url"] =~ "^/basic/" {{
  auth.require = ("" => ("method" => "basic", "realm" => "git", "require" => "valid-user"))
}}
$HTTP["url"] =~ "^/bearer/" {{
  $REQUEST_HEADER["Authorization"] != "Bearer {HTTP_TOKEN}" {{ url.access-deny = ("") }}
}}
{tls_config}"#,
        root = d.display()
    );
    std::fs::write(d.join("lighttpd.conf"), config).unwrap();
    let child = Command::new(lighttpd)
        .args(["-D", "-f", d.join("lighttpd.conf").to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("lighttpd starts");
    await_port(port, "lighttpd");
    Server { child, port, dir }
}
