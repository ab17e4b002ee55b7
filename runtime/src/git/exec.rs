//! Running one git op, blocking: a persistent bare clone per (repository, branch), commits built from
//! the previous tree without a working tree, and pushes as compare-and-swap on the expected head.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Once;

use git2::{
    AutotagOption, Cred, CredentialType, FetchOptions, Oid, PushOptions, RemoteCallbacks,
    RemoteRedirect, Repository,
};
use gitops_reverser_core::config::NamespacedName;
use gitops_reverser_core::io::{Blobs, GitOp, GitOpKind, GitResult, PlannedCommit};

use super::commit::{write_commits_signed, CommitError};
use super::creds::{Credentials, HttpAuth};
use super::errors::{classify, scrub, Fail, Findings};
use super::known_hosts::{fingerprint, Verdict};
use super::sign::Signer;
use super::tree;
use super::url::{RemoteUrl, Transport};
use gitops_reverser_core::seal::Sealing;

/// How long libgit2 waits to connect to a server, in milliseconds (at most: see
/// [`set_git_timeout_ms`]).
pub const CONNECT_TIMEOUT_MS: i32 = 15_000;
/// Longest silence on an open connection before libgit2 gives up, in milliseconds, until
/// [`set_git_timeout_ms`] sets another (`--git-timeout`).
pub const IO_TIMEOUT_MS: i32 = 30_000;
/// libgit2's cache of parsed objects, shared by every clone (its default: 256 MiB).
pub const OBJECT_CACHE_BYTES_MAX: usize = 32 << 20;
/// One mapped window of a pack file (libgit2's default on 64-bit: 1 GiB).
pub const MWINDOW_BYTES: usize = 32 << 20;
/// All mapped pack windows together, before libgit2 unmaps the least recently used (its default:
/// 8 GiB). Mapped pages count against the pod's memory.
pub const MWINDOW_MAPPED_BYTES_MAX: usize = 128 << 20;
/// Pack files kept open at once (libgit2's default: no limit).
pub const MWINDOW_FILES_MAX: usize = 256;
/// What a push's pack builder may hold: objects in its delta window, and deltas it keeps for
/// writing (`pack.windowMemory`, `pack.deltaCacheSize`; libgit2's defaults: unlimited, 256 MiB).
pub const PUSH_WINDOW_BYTES_MAX: i64 = 32 << 20;
/// See [`PUSH_WINDOW_BYTES_MAX`].
pub const PUSH_DELTA_CACHE_BYTES_MAX: i64 = 16 << 20;
/// Bytes one fetch may receive at most: past it the fetch stops (`RemoteTooLarge`).
pub const GIT_FETCH_BYTES_MAX: usize = 2 << 30;
/// How long one fetch may take in all, in milliseconds, however steadily bytes arrive.
pub const GIT_OP_MS_MAX: u64 = 10 * 60 * 1000;

static FETCH_BYTES_MAX: AtomicUsize = AtomicUsize::new(GIT_FETCH_BYTES_MAX);
static FETCH_MS_MAX: AtomicU64 = AtomicU64::new(GIT_OP_MS_MAX);

/// Sets the fetch limits (bytes, total milliseconds), process-wide; the defaults are
/// [`GIT_FETCH_BYTES_MAX`] and [`GIT_OP_MS_MAX`].
pub fn set_fetch_limits(bytes_max: usize, ms_max: u64) {
    FETCH_BYTES_MAX.store(bytes_max, Ordering::Relaxed);
    FETCH_MS_MAX.store(ms_max, Ordering::Relaxed);
}

/// How long one git op may take in all, in milliseconds: the fetch's time limit
/// ([`set_fetch_limits`]), which the executor also enforces around the whole op, for the parts no
/// libgit2 callback sees (a ref advertisement trickled a byte at a time).
pub fn op_ms_max() -> u64 {
    fetch_limits().1
}

fn fetch_limits() -> (usize, u64) {
    (
        FETCH_BYTES_MAX.load(Ordering::Relaxed),
        FETCH_MS_MAX.load(Ordering::Relaxed),
    )
}

/// Sets libgit2's process-wide options once: timeouts, memory bounds, and no hash check on every
/// object read. That check re-hashed each tree a commit's write reads (a 5,000-entry folder's is
/// 250 KB, read per commit) and was a third of the write time; objects from a remote are hashed
/// by the indexer as they arrive, and the remote checks what we push.
pub fn configure_libgit2() {
    static OPTIONS: Once = Once::new();
    OPTIONS.call_once(|| {
        git2::opts::strict_hash_verification(false);
        // SAFETY: these set process-wide integers in libgit2 before any of our connections
        // start and before any repository is opened. `GIT_OPT_SET_CACHE_MAX_SIZE` takes one
        // `ssize_t` (git2 wraps no setter for it).
        unsafe {
            let _ = git2::opts::set_server_connect_timeout_in_milliseconds(CONNECT_TIMEOUT_MS);
            let _ = git2::opts::set_server_timeout_in_milliseconds(IO_TIMEOUT_MS);
            let _ = git2::opts::set_mwindow_size(MWINDOW_BYTES);
            let _ = git2::opts::set_mwindow_mapped_limit(MWINDOW_MAPPED_BYTES_MAX);
            let _ = git2::opts::set_mwindow_file_limit(MWINDOW_FILES_MAX);
            libgit2_sys::git_libgit2_opts(
                libgit2_sys::GIT_OPT_SET_CACHE_MAX_SIZE as std::ffi::c_int,
                OBJECT_CACHE_BYTES_MAX as isize,
            );
        }
    });
}

/// Commits `Verify` searches back from the head for the lost push's trailer.
pub const VERIFY_DEPTH_MAX: usize = 10_000;

/// Where the persistent clones live.
#[derive(Clone, Debug)]
pub struct Workspace {
    root: PathBuf,
}

impl Workspace {
    /// A workspace under `root` (created if missing). Sets libgit2's process-wide timeouts and
    /// memory bounds once.
    pub fn new(root: impl Into<PathBuf>) -> std::io::Result<Workspace> {
        configure_libgit2();
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(Workspace { root })
    }

    /// The clone directory of an op's (repository, URL, branch).
    pub fn clone_dir(&self, op: &GitOp) -> PathBuf {
        self.clone_dir_of(&op.repo, &op.repo_url, &op.branch)
    }

    /// The clone directory of a (GitRepoConfig, URL, branch). The name ends in a SHA-256 of the
    /// three: a tenant must not be able to choose names that share another tenant's clone.
    pub fn clone_dir_of(&self, repo: &NamespacedName, url: &str, branch: &str) -> PathBuf {
        let key = format!("{}\0{}\0{}\0{}", repo.namespace, repo.name, url, branch);
        let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
        let hash: String = digest.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let readable: String = format!("{}-{}", repo.namespace, repo.name)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(100)
            .collect();
        self.root.join(format!("{readable}-{hash}"))
    }

    /// The clone directories present, in order.
    pub fn clone_dirs(&self) -> std::io::Result<Vec<PathBuf>> {
        let mut dirs = Vec::new();
        for entry in std::fs::read_dir(&self.root)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                dirs.push(entry.path());
            }
        }
        dirs.sort();
        Ok(dirs)
    }
}

/// Runs `op` to completion on this thread; failures come back as `GitResult::Failed` with reasons
/// scrubbed of every credential in `creds`.
pub fn execute(ws: &Workspace, op: &GitOp, creds: Option<&Credentials>) -> GitResult {
    execute_signed(ws, op, creds, None)
}

/// [`execute`], signing every commit with `signer`. An op whose GitRepoConfig names a signing
/// key ([`GitOp::signing_secret`]) pushes nothing without one.
pub fn execute_signed(
    ws: &Workspace,
    op: &GitOp,
    creds: Option<&Credentials>,
    signer: Option<&Signer>,
) -> GitResult {
    let secrets = creds.map(Credentials::secrets).unwrap_or_default();
    match run(ws, op, creds, signer) {
        Ok(result) => result,
        Err(fail) => GitResult::Failed {
            retryable: fail.retryable,
            reason: scrub(&fail.reason, &secrets),
            cause: fail.cause.into(),
        },
    }
}

fn run(
    ws: &Workspace,
    op: &GitOp,
    creds: Option<&Credentials>,
    signer: Option<&Signer>,
) -> Result<GitResult, Fail> {
    let url = RemoteUrl::parse(&op.repo_url)
        .map_err(|e| Fail::fatal(e).because("InvalidConfiguration"))?;
    if !git2::Reference::is_valid_name(&format!("refs/heads/{}", op.branch)) {
        return Err(Fail::fatal(format!(
            "{:?} is not a valid branch name",
            op.branch
        )));
    }
    check_auth_fits(&url, creds, op.secret_name.as_deref())?;
    let signer = match (&op.signing_secret, signer) {
        (None, _) => None,
        (Some(_), Some(s)) => Some(s),
        (Some(secret), None) if matches!(op.kind, GitOpKind::Push { .. }) => {
            return Err(Fail::fatal(format!(
                "the signing key in Secret {secret} is not usable (see the GitRepoConfig's Signing condition); nothing is pushed unsigned"
            ))
            .because("SigningKeyInvalid"))
        }
        (Some(_), None) => None,
    };
    let clone = Clone::open(&ws.clone_dir(op), url, &op.branch, creds)?;
    match &op.kind {
        GitOpKind::ReadPaths { folder } => {
            let head = clone.fetch()?;
            let entries = match head {
                None => Vec::new(),
                Some(h) => {
                    let tree = clone
                        .repo
                        .find_commit(h)
                        .and_then(|c| c.tree())
                        .map_err(local)?;
                    let mut entries = tree::list(&clone.repo, &tree, folder).map_err(|e| match e {
                        tree::ListError::Git(e) => local(e),
                        e @ tree::ListError::TooLarge { .. } => Fail::fatal(format!(
                            "{e}; the operator does not read a folder that large (move the files out, or choose another baseFolder)"
                        ))
                        .because("RepositoryTooLarge"),
                    })?;
                    if let Some(sealing) = &op.sealing {
                        listed_ids(&clone.repo, sealing, &mut entries).map_err(local)?;
                    }
                    entries
                }
            };
            Ok(GitResult::Paths {
                head: head.map(|h| h.to_string()),
                entries,
            })
        }
        GitOpKind::Push {
            expected_head,
            commits,
        } => clone.push(parse_oid(expected_head)?, commits, signer),
        GitOpKind::Verify {
            expected_head,
            op_tag,
        } => {
            let head = clone.fetch()?;
            let landed = match head {
                None => false,
                Some(h) => clone
                    .has_trailer(h, parse_oid(expected_head)?, op_tag)
                    .map_err(local)?,
            };
            Ok(GitResult::Verified {
                head: head.map(|h| h.to_string()),
                landed,
            })
        }
    }
}

/// Refuses at once what cannot work, with the fix: SSH without a key, HTTP credentials on git://.
fn check_auth_fits(
    url: &RemoteUrl,
    creds: Option<&Credentials>,
    secret: Option<&str>,
) -> Result<(), Fail> {
    match (url.transport, creds) {
        (Transport::Ssh, None) => Err(Fail::fatal(format!(
            "{} is an SSH URL: the GitRepoConfig needs a secretRef with ssh-privatekey and known_hosts{}",
            url.redacted,
            secret.map(|s| format!(" (Secret {s} is missing or unreadable)")).unwrap_or_default()
        ))),
        (Transport::Ssh, Some(c)) if c.ssh.is_none() => Err(Fail::fatal(format!(
            "{} is an SSH URL but Secret {} has no ssh-privatekey",
            url.redacted, c.secret_name
        ))),
        _ => Ok(()),
    }
}

fn parse_oid(hex: &Option<String>) -> Result<Option<Oid>, Fail> {
    hex.as_deref()
        .map(|h| Oid::from_str(h).map_err(|_| Fail::fatal(format!("{h:?} is not a commit id"))))
        .transpose()
}

/// A local error: the clone itself (disk, corruption). Retrying after re-cloning may help.
fn local(e: git2::Error) -> Fail {
    Fail::retry(format!("local clone: {}", e.message())).because("LocalStorage")
}

struct Clone<'c> {
    repo: Repository,
    url: RemoteUrl,
    branch: String,
    creds: Option<&'c Credentials>,
}

/// What the callbacks of one remote operation observed.
impl Default for Session {
    fn default() -> Self {
        Session {
            started: std::time::Instant::now(),
            findings: RefCell::default(),
            ssh_attempts: Cell::default(),
            http_attempts: Cell::default(),
            remote_at_negotiation: Cell::default(),
            rejected: RefCell::default(),
        }
    }
}

/// What the callbacks of one remote operation observed.
struct Session {
    /// When the op began: [`GIT_OP_MS_MAX`] counts from here.
    started: std::time::Instant,
    findings: RefCell<Findings>,
    ssh_attempts: Cell<u32>,
    http_attempts: Cell<u32>,
    /// The remote's head when the push was negotiated (zero: no such branch).
    remote_at_negotiation: Cell<Option<Oid>>,
    /// The push's update was refused by the server, with its status.
    rejected: RefCell<Option<String>>,
}

/// Sets how long a git op may go without progress (libgit2's read/write timeout on every
/// transport's socket, process-wide), and the connect timeout to the smaller of that and
/// [`CONNECT_TIMEOUT_MS`]. Past it the op fails as `RemoteTimeout` and is retried with backoff.
pub fn set_git_timeout_ms(ms: u64) {
    let ms = i32::try_from(ms.max(1)).unwrap_or(i32::MAX);
    // SAFETY: sets process-wide integers libgit2 reads when it opens a connection.
    unsafe {
        let _ = git2::opts::set_server_timeout_in_milliseconds(ms);
        let _ = git2::opts::set_server_connect_timeout_in_milliseconds(ms.min(CONNECT_TIMEOUT_MS));
    }
}

/// Sets the clone's `pack.*` bounds for the pack builder a push runs (it reads them from the
/// repository's configuration), where they are not set yet.
fn bound_push_memory(repo: &Repository) -> Result<(), git2::Error> {
    let mut config = repo.config()?;
    for (key, value) in [
        ("pack.windowMemory", PUSH_WINDOW_BYTES_MAX),
        ("pack.deltaCacheSize", PUSH_DELTA_CACHE_BYTES_MAX),
    ] {
        if config.get_i64(key).ok() != Some(value) {
            config.set_i64(key, value)?;
        }
    }
    Ok(())
}

impl<'c> Clone<'c> {
    fn open(
        dir: &Path,
        url: RemoteUrl,
        branch: &str,
        creds: Option<&'c Credentials>,
    ) -> Result<Clone<'c>, Fail> {
        if let Err(e) = super::commit::maintain(dir) {
            tracing::warn!(dir = %dir.display(), error = %e.message(), "merging the clone's packs failed; going on");
        }
        let repo = match Repository::open_bare(dir) {
            Ok(r) => r,
            Err(_) => {
                // Missing or damaged: start again (the remote is the truth).
                let _ = std::fs::remove_dir_all(dir);
                Repository::init_bare(dir).map_err(local)?
            }
        };
        bound_push_memory(&repo).map_err(local)?;
        Ok(Clone {
            repo,
            url,
            branch: branch.to_string(),
            creds,
        })
    }

    fn tracking_ref(&self) -> String {
        format!("refs/remotes/origin/{}", self.branch)
    }

    fn tracked_head(&self) -> Option<Oid> {
        self.repo.refname_to_id(&self.tracking_ref()).ok()
    }

    fn set_tracked_head(&self, head: Option<Oid>) -> Result<(), Fail> {
        match head {
            Some(h) => self
                .repo
                .reference(&self.tracking_ref(), h, true, "remote head")
                .map(drop),
            None => match self.repo.find_reference(&self.tracking_ref()) {
                Ok(mut r) => r.delete(),
                Err(_) => Ok(()),
            },
        }
        .map_err(local)
    }

    fn callbacks<'s>(&'s self, s: &'s Session) -> RemoteCallbacks<'s> {
        let mut cb = RemoteCallbacks::new();
        let creds = self.creds;
        let url = &self.url;
        cb.credentials(move |_url, user_from_url, allowed| {
            let secret = creds.map_or("(none)", |c| c.secret_name.as_str());
            if allowed.contains(CredentialType::USERNAME) {
                return Cred::username(user_from_url.unwrap_or("git"));
            }
            if allowed.contains(CredentialType::SSH_KEY) {
                if let Some(ssh) = creds.and_then(|c| c.ssh.as_ref()) {
                    s.ssh_attempts.set(s.ssh_attempts.get() + 1);
                    if s.ssh_attempts.get() == 1 {
                        return Cred::ssh_key_from_memory(
                            user_from_url.unwrap_or("git"),
                            ssh.public_key.as_deref(),
                            &ssh.private_key,
                            ssh.passphrase.as_deref(),
                        );
                    }
                    s.findings.borrow_mut().auth = Some(format!(
                        "SSH authentication to {} failed: the server refused the key in Secret {secret} (is it a deploy key with write access, and is ssh-password right?)",
                        url.redacted
                    ));
                    return Err(git2::Error::from_str("authentication refused"));
                }
            }
            if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
                if let Some(HttpAuth::Basic { username, password }) = creds.and_then(|c| c.http.as_ref()) {
                    s.http_attempts.set(s.http_attempts.get() + 1);
                    if s.http_attempts.get() == 1 {
                        return Cred::userpass_plaintext(username, password);
                    }
                    s.findings.borrow_mut().auth = Some(format!(
                        "authentication to {} failed: the server refused the username and password in Secret {secret}",
                        url.redacted
                    ));
                    return Err(git2::Error::from_str("authentication refused"));
                }
            }
            let bearer = matches!(creds.and_then(|c| c.http.as_ref()), Some(HttpAuth::Bearer(_)));
            s.findings.borrow_mut().auth = Some(if bearer {
                format!("authentication to {} failed: the server refused the bearerToken in Secret {secret}", url.redacted)
            } else {
                format!(
                    "{} asks for credentials the GitRepoConfig does not have (Secret {secret}): add username + password, bearerToken, or ssh-privatekey + known_hosts",
                    url.redacted
                )
            });
            Err(git2::Error::from_str("no usable credentials"))
        });
        cb.certificate_check(move |cert, _host| {
            let Some(hk) = cert.as_hostkey() else {
                // TLS: libgit2 has verified the chain against the system's CAs; keep its verdict.
                return Ok(git2::CertificateCheckStatus::CertificatePassthrough);
            };
            let host = url.host.as_deref().unwrap_or("");
            let port = url.ssh_port();
            let key_type = hk.hostkey_type().map_or("unknown", |t| t.name());
            let print = hk.hash_sha256().map(fingerprint).unwrap_or_else(|| "(no fingerprint)".into());
            let name = if port == 22 { host.to_string() } else { format!("[{host}]:{port}") };
            let verdict = match (creds.and_then(|c| c.ssh.as_ref()), hk.hostkey()) {
                (Some(ssh), Some(key)) => ssh.known_hosts.check(host, port, key_type, key),
                _ => Verdict::Unknown,
            };
            let why = match verdict {
                Verdict::Trusted => return Ok(git2::CertificateCheckStatus::CertificateOk),
                Verdict::Unknown => format!(
                    "host key verification failed: {name} is not in known_hosts; it offered {key_type} {print}. Add the server's key (ssh-keyscan -p {port} {host}) after checking that fingerprint"
                ),
                Verdict::Mismatch { listed_types } => format!(
                    "host key verification failed: {name} offered {key_type} {print}, which does not match known_hosts (listed: {}). The server's key changed or someone is intercepting the connection",
                    listed_types.join(", ")
                ),
                Verdict::Revoked => format!("host key verification failed: {name} offered a revoked key {key_type} {print}"),
            };
            s.findings.borrow_mut().host_key = Some(why);
            Err(git2::Error::from_str("host key verification failed"))
        });
        cb.transfer_progress(move |p| {
            let (bytes_max, ms_max) = fetch_limits();
            let why = if p.received_bytes() > bytes_max {
                ("RemoteTooLarge", format!(
                    "{} sent more than {bytes_max} bytes for one fetch; the operator stops there so that one remote cannot fill the work dir",
                    url.redacted
                ))
            } else if s.started.elapsed().as_millis() as u64 > ms_max {
                ("RemoteTooSlow", format!(
                    "a fetch from {} took more than {} s in all; stopped (a remote that trickles bytes keeps no thread for ever)",
                    url.redacted,
                    ms_max / 1000
                ))
            } else {
                return true;
            };
            s.findings.borrow_mut().limit = Some(why);
            false
        });
        cb.push_negotiation(move |updates| {
            if let Some(u) = updates.first() {
                s.remote_at_negotiation.set(Some(u.src()));
            }
            Ok(())
        });
        cb.push_update_reference(move |_refname, status| {
            if let Some(msg) = status {
                *s.rejected.borrow_mut() = Some(msg.to_string());
            }
            Ok(())
        });
        cb
    }

    fn bearer_header(&self) -> Option<String> {
        match self.creds.and_then(|c| c.http.as_ref()) {
            Some(HttpAuth::Bearer(t))
                if matches!(self.url.transport, Transport::Https | Transport::Http) =>
            {
                Some(format!("Authorization: Bearer {t}"))
            }
            _ => None,
        }
    }

    /// Fetches the branch and returns the remote's head (`None`: no such branch), which also becomes
    /// the tracking ref.
    fn fetch(&self) -> Result<Option<Oid>, Fail> {
        let session = Session::default();
        let header = self.bearer_header();
        let headers: Vec<&str> = header.iter().map(String::as_str).collect();
        // An anonymous remote: the URL (which may hold a password) is never written to the clone's config.
        let mut remote = self.repo.remote_anonymous(self.url.raw()).map_err(local)?;
        let mut fo = FetchOptions::new();
        fo.remote_callbacks(self.callbacks(&session))
            .download_tags(AutotagOption::None)
            .update_fetchhead(false)
            .follow_redirects(RemoteRedirect::None)
            .custom_headers(&headers);
        let refspec = format!("+refs/heads/{}:{}", self.branch, self.tracking_ref());
        // The tracking ref is recreated by the fetch exactly when the remote has the branch, which
        // tells "no such branch" apart from "unchanged". (Reading the remote's advertised refs
        // instead is unsound in git2 for an empty local remote.)
        self.set_tracked_head(None)?;
        remote
            .fetch(&[refspec.as_str()], Some(&mut fo), None)
            .map_err(|e| classify(&e, &session.findings.borrow(), &self.url.redacted))?;
        Ok(self.tracked_head())
    }

    fn push(
        &self,
        expected: Option<Oid>,
        commits: &[PlannedCommit],
        signer: Option<&Signer>,
    ) -> Result<GitResult, Fail> {
        if self.tracked_head() != expected {
            // Our copy is behind (or ahead of) what the core planned on: learn the truth first.
            let remote = self.fetch()?;
            if remote != expected {
                return Ok(GitResult::Conflict {
                    remote_head: remote.map(|h| h.to_string()),
                });
            }
        }
        let (head, blobs) = self.build(expected, commits, signer)?;
        if Some(head) == expected {
            // Every commit was already true of the remote's tree: nothing to push.
            return Ok(GitResult::Pushed {
                head: head.to_string(),
                blobs,
            });
        }
        let branch_ref = format!("refs/heads/{}", self.branch);
        self.repo
            .reference(&branch_ref, head, true, "planned commits")
            .map_err(local)?;

        let session = Session::default();
        let header = self.bearer_header();
        let headers: Vec<&str> = header.iter().map(String::as_str).collect();
        let mut remote = self.repo.remote_anonymous(self.url.raw()).map_err(local)?;
        let mut po = PushOptions::new();
        po.remote_callbacks(self.callbacks(&session))
            .follow_redirects(RemoteRedirect::None)
            .custom_headers(&headers);
        let refspec = format!("{branch_ref}:{branch_ref}");
        let pushed = remote.push(&[refspec.as_str()], Some(&mut po));
        let at_negotiation = session.remote_at_negotiation.get();
        let moved =
            at_negotiation.is_some_and(|src| Some(src).filter(|s| !s.is_zero()) != expected);
        match pushed {
            Err(e) if e.code() == git2::ErrorCode::NotFastForward || moved => {
                // Someone else pushed since we read: never overwrite; let the core re-plan on theirs.
                let remote = self.fetch()?;
                Ok(GitResult::Conflict { remote_head: remote.map(|h| h.to_string()) })
            }
            Err(e) if at_negotiation.is_some() && session.findings.borrow().auth.is_none() => {
                // The server had our update and then the connection failed: it may have landed.
                tracing::warn!(url = %self.url.redacted, error = %scrub(e.message(), &self.secrets()), "push result unknown");
                Ok(GitResult::Unknown)
            }
            Err(e) => Err(classify(&e, &session.findings.borrow(), &self.url.redacted)),
            Ok(()) => match session.rejected.borrow().clone() {
                None => {
                    self.set_tracked_head(Some(head))?;
                    Ok(GitResult::Pushed { head: head.to_string(), blobs })
                }
                Some(status) if is_stale(&status) => {
                    let remote = self.fetch()?;
                    if remote == expected {
                        return Err(Fail::fatal(format!(
                            "{} refused the update of {branch_ref}: {status}",
                            self.url.redacted
                        ))
                        .because("PushRejected"));
                    }
                    Ok(GitResult::Conflict { remote_head: remote.map(|h| h.to_string()) })
                }
                Some(status) => Err(Fail::fatal(format!(
                    "{} refused the update of {branch_ref}: {status} (a server-side hook or branch protection; allow the operator to push to {})",
                    self.url.redacted, self.branch
                )).because("PushRejected")),
            },
        }
    }

    fn secrets(&self) -> Vec<&str> {
        self.creds.map(Credentials::secrets).unwrap_or_default()
    }

    fn build(
        &self,
        parent: Option<Oid>,
        commits: &[PlannedCommit],
        signer: Option<&Signer>,
    ) -> Result<(Oid, Blobs), Fail> {
        write_commits_signed(&self.repo, parent, commits, signer).map_err(|e| match e {
            CommitError::Identity(why) => Fail::fatal(why),
            CommitError::Seal(why) => {
                Fail::fatal(format!("a Secret could not be encrypted: {why}"))
                    .because("EncryptionFailed")
            }
            CommitError::Git(e) => local(e),
        })
    }

    /// Whether a commit after `since` up to `head` carries `Reverser-Op: {tag}`.
    fn has_trailer(&self, head: Oid, since: Option<Oid>, tag: &str) -> Result<bool, git2::Error> {
        let line = format!("{}: {tag}", gitops_reverser_core::OP_TRAILER);
        let mut walk = self.repo.revwalk()?;
        walk.push(head)?;
        if let Some(s) = since {
            if self.repo.find_commit(s).is_ok() {
                walk.hide(s)?;
            }
        }
        for id in walk.take(VERIFY_DEPTH_MAX) {
            let commit = self.repo.find_commit(id?)?;
            if commit
                .message_raw_bytes()
                .split(|b| *b == b'\n')
                .any(|l| l == line.as_bytes())
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Reports the sealed files of a listing by their listed id ([`gitops_reverser_core::seal`]):
/// their blobs are new on every encryption, their fingerprints are not. Only files in a sealed
/// resource's folders are read.
fn listed_ids(
    repo: &Repository,
    sealing: &Sealing,
    entries: &mut [(String, [u8; 20])],
) -> Result<(), git2::Error> {
    let mut names: Vec<&str> = vec!["secrets"];
    names.extend(sealing.extra_resources.iter().map(|(_, r)| r.as_str()));
    for (path, id) in entries.iter_mut() {
        if !path.split('/').any(|seg| names.contains(&seg)) {
            continue;
        }
        let blob = repo.find_blob(Oid::from_bytes(id)?)?;
        if let Some(listed) = gitops_reverser_core::seal::listed_id(blob.content()) {
            *id = listed;
        }
    }
    Ok(())
}

/// Server statuses that mean "the branch moved under you".
fn is_stale(status: &str) -> bool {
    let s = status.to_ascii_lowercase();
    [
        "non-fast-forward",
        "fetch first",
        "stale info",
        "cannot lock ref",
        "failed to update ref",
    ]
    .iter()
    .any(|p| s.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workspace_bounds_libgit2s_memory_and_each_clones_push() {
        let d = tempfile::tempdir().unwrap();
        Workspace::new(d.path()).unwrap();
        // SAFETY: reads of process-wide integers.
        unsafe {
            assert_eq!(git2::opts::get_mwindow_size().unwrap(), MWINDOW_BYTES);
            assert_eq!(
                git2::opts::get_mwindow_mapped_limit().unwrap(),
                MWINDOW_MAPPED_BYTES_MAX
            );
            assert_eq!(
                git2::opts::get_mwindow_file_limit().unwrap(),
                MWINDOW_FILES_MAX
            );
            let (mut current, mut allowed): (isize, isize) = (0, 0);
            libgit2_sys::git_libgit2_opts(
                libgit2_sys::GIT_OPT_GET_CACHED_MEMORY as std::ffi::c_int,
                &mut current as *mut isize,
                &mut allowed as *mut isize,
            );
            assert_eq!(allowed, OBJECT_CACHE_BYTES_MAX as isize);
        }
        let url = RemoteUrl::parse("https://git.example/r.git").unwrap();
        let clone = Clone::open(&d.path().join("c"), url, "main", None).unwrap();
        let config = clone.repo.config().unwrap();
        assert_eq!(
            config.get_i64("pack.windowMemory").unwrap(),
            PUSH_WINDOW_BYTES_MAX
        );
        assert_eq!(
            config.get_i64("pack.deltaCacheSize").unwrap(),
            PUSH_DELTA_CACHE_BYTES_MAX
        );
    }
}
