//! Turning libgit2's errors into reasons a user can act on, and deciding whether waiting may help.

use git2::{ErrorClass, ErrorCode};

use super::url::redact_userinfo;

/// A failed op: what the core receives as `GitResult::Failed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fail {
    /// Whether retrying later may help.
    pub retryable: bool,
    /// What happened and what to change; scrubbed of credentials before it leaves the executor.
    pub reason: String,
    /// Its kind, the CamelCase reason of the GitRepoConfig's `Pushed` condition.
    pub cause: &'static str,
}

impl Fail {
    /// A failure that waiting may fix (network, server trouble).
    pub fn retry(reason: impl Into<String>) -> Fail {
        Fail {
            retryable: true,
            reason: reason.into(),
            cause: "GitFailed",
        }
    }

    /// A failure a user must fix (credentials, host keys, configuration).
    pub fn fatal(reason: impl Into<String>) -> Fail {
        Fail {
            retryable: false,
            reason: reason.into(),
            cause: "GitFailed",
        }
    }

    /// The same failure, of kind `cause`.
    pub fn because(self, cause: &'static str) -> Fail {
        Fail { cause, ..self }
    }
}

/// What the transport callbacks learned before libgit2 gave up; it explains errors better than
/// libgit2's message can.
#[derive(Clone, Debug, Default)]
pub struct Findings {
    /// Our host-key verdict, when it refused the server.
    pub host_key: Option<String>,
    /// Our credentials callback gave up: the server refused what we offered (or we had nothing).
    pub auth: Option<String>,
    /// Our progress callback stopped a fetch over a limit: its kind (`RemoteTooLarge`,
    /// `RemoteTooSlow`) and why.
    pub limit: Option<(&'static str, String)>,
}

/// Classifies an error of a remote operation on `url` (redacted form).
pub fn classify(err: &git2::Error, findings: &Findings, url: &str) -> Fail {
    if let Some(why) = &findings.host_key {
        return Fail::fatal(why.clone()).because("HostKeyRejected");
    }
    if let Some(why) = &findings.auth {
        return Fail::fatal(why.clone()).because("AuthenticationFailed");
    }
    if let Some((cause, why)) = &findings.limit {
        return Fail::retry(why.clone()).because(cause);
    }
    let msg = redact_userinfo(err.message());
    let lower = msg.to_ascii_lowercase();
    let has = |s: &str| lower.contains(s);
    if err.code() == ErrorCode::Auth || has("authentication") || has("status code: 401") {
        return Fail::fatal(format!(
            "authentication to {url} failed: {msg}; check the credentials Secret"
        ))
        .because("AuthenticationFailed");
    }
    if has("private key") || has("public key from private") {
        return Fail::fatal(format!(
            "the SSH key could not be used for {url}: {msg}; check ssh-privatekey's format and ssh-password"
        ))
        .because("CredentialsInvalid");
    }
    if err.code() == ErrorCode::Certificate || err.class() == ErrorClass::Ssl {
        return Fail::fatal(format!("TLS certificate of {url} was not accepted: {msg}"))
            .because("CertificateRejected");
    }
    if has("status code: 403") || has("access denied") && !has("not exported") {
        return Fail::fatal(format!(
            "access to {url} was denied: {msg}; check the credentials' permissions"
        ))
        .because("AccessDenied");
    }
    if has("status code: 404")
        || has("not exported")
        || has("does not appear to be a git repository")
        || has("repository not found")
        || has("no such repository")
        || has("could not find repository")
        || has("not a git repository")
        || (err.class() == ErrorClass::Repository && err.code() == ErrorCode::NotFound)
    {
        return Fail::fatal(format!(
            "repository {url} does not exist or is not readable with these credentials: {msg}"
        ))
        .because("RepositoryNotFound");
    }
    if has("timed out") || err.code() == ErrorCode::Timeout {
        return Fail::retry(format!(
            "{url} made no progress within the git timeout (--git-timeout): {msg}"
        ))
        .because("RemoteTimeout");
    }
    // libgit2 is told not to follow redirects: credentials (a bearer token is a header on every
    // request) and pushes go to the configured host only.
    if has("status code: 30") || has("redirect") {
        return Fail::fatal(format!(
            "{url} answered with a redirect, which is not followed so that credentials and pushes go only to the configured host: {msg}; set repoURL to where it redirects"
        ))
        .because("RedirectRefused");
    }
    if has("status code: 5")
        || has("failed to connect")
        || has("failed to resolve")
        || has("timed out")
        || has("connection refused")
        || has("connection reset")
        || has("early eof")
        || has("broken pipe")
        || matches!(
            err.class(),
            ErrorClass::Net | ErrorClass::Os | ErrorClass::Http | ErrorClass::Ssh
        )
    {
        return Fail::retry(format!("cannot reach {url}: {msg}")).because("RemoteUnreachable");
    }
    Fail::retry(format!("git operation on {url} failed: {msg}"))
}

/// Replaces every secret in `text` with `***`, and passwords in URLs.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = redact_userinfo(text);
    for s in secrets {
        if !s.is_empty() && out.contains(s) {
            out = out.replace(s, "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubbing_removes_every_secret_and_url_password() {
        let s = scrub("x hunter2 y https://u:tok3n@h/r z", &["hunter2", "tok3n"]);
        assert_eq!(s, "x *** y https://u:***@h/r z");
    }

    #[test]
    fn findings_explain_better_than_libgit2() {
        let e = git2::Error::from_str("user cancelled");
        let f = Findings {
            host_key: Some("host key mismatch".into()),
            ..Findings::default()
        };
        assert_eq!(
            classify(&e, &f, "u"),
            Fail::fatal("host key mismatch").because("HostKeyRejected")
        );
        let f = Findings {
            limit: Some(("RemoteTooLarge", "sent more than 2048 MiB".into())),
            ..Findings::default()
        };
        assert_eq!(
            classify(&e, &f, "u"),
            Fail::retry("sent more than 2048 MiB").because("RemoteTooLarge")
        );
    }

    #[test]
    fn network_trouble_is_retryable_and_missing_repositories_are_not() {
        let none = Findings::default();
        let refused = git2::Error::new(
            ErrorCode::GenericError,
            ErrorClass::Net,
            "failed to connect to 127.0.0.1: Connection refused",
        );
        assert!(classify(&refused, &none, "u").retryable);
        assert_eq!(classify(&refused, &none, "u").cause, "RemoteUnreachable");
        let silent = git2::Error::new(
            ErrorCode::GenericError,
            ErrorClass::Net,
            "failed to read from 127.0.0.1: timed out",
        );
        let f = classify(&silent, &none, "u");
        assert!(f.retryable && f.cause == "RemoteTimeout", "{f:?}");
        let missing = git2::Error::new(
            ErrorCode::GenericError,
            ErrorClass::Net,
            "remote error: access denied or repository not exported: /x.git",
        );
        let f = classify(&missing, &none, "u");
        assert!(!f.retryable && f.reason.contains("does not exist"), "{f:?}");
        let http404 = git2::Error::new(
            ErrorCode::GenericError,
            ErrorClass::Http,
            "unexpected http status code: 404",
        );
        assert!(!classify(&http404, &none, "u").retryable);
        let http503 = git2::Error::new(
            ErrorCode::GenericError,
            ErrorClass::Http,
            "unexpected http status code: 503",
        );
        assert!(classify(&http503, &none, "u").retryable);
    }
}
