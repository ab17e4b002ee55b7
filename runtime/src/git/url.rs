//! Remote URLs: which transport, which host (for host-key checks), and a form safe to log.

/// How a remote is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `ssh://` or scp-like `user@host:path`.
    Ssh,
    /// `https://`.
    Https,
    /// `http://` (plain; only for servers on a trusted network).
    Http,
    /// `git://` (anonymous, no authentication).
    Git,
    /// `file://` or a local path.
    File,
}

/// A parsed remote URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteUrl {
    /// The URL as configured (may hold a password; never log it, use [`RemoteUrl::redacted`]).
    raw: String,
    /// Its transport.
    pub transport: Transport,
    /// Host name, for network transports.
    pub host: Option<String>,
    /// Port given in the URL, if any.
    pub port: Option<u16>,
    /// The URL with any password replaced by `***`.
    pub redacted: String,
}

/// Default SSH port: `known_hosts` names hosts on it without a port.
pub const SSH_PORT_DEFAULT: u16 = 22;

impl RemoteUrl {
    /// Parses a repository URL; the error says what is wrong without echoing credentials.
    pub fn parse(raw: &str) -> Result<RemoteUrl, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("the repository URL is empty".into());
        }
        if raw.starts_with('/') {
            return Ok(RemoteUrl::local(raw));
        }
        let Some((scheme, rest)) = raw.split_once("://") else {
            return RemoteUrl::scp_like(raw);
        };
        let transport = match scheme.to_ascii_lowercase().as_str() {
            "ssh" | "git+ssh" | "ssh+git" => Transport::Ssh,
            "https" => Transport::Https,
            "http" => Transport::Http,
            "git" => Transport::Git,
            "file" => return Ok(RemoteUrl::local(raw)),
            other => {
                return Err(format!(
                    "unsupported URL scheme {other:?}: use https://, ssh://, user@host:path, git:// or file://"
                ))
            }
        };
        let authority = rest.split('/').next().unwrap_or("");
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (host, port) = split_host_port(hostport)?;
        if host.is_empty() {
            return Err(format!(
                "the repository URL {} names no host",
                redact_userinfo(raw)
            ));
        }
        let redacted = match userinfo {
            Some(_) => redact_userinfo(raw),
            None => raw.to_string(),
        };
        Ok(RemoteUrl {
            raw: raw.to_string(),
            transport,
            host: Some(host),
            port,
            redacted,
        })
    }

    fn local(raw: &str) -> RemoteUrl {
        RemoteUrl {
            raw: raw.to_string(),
            transport: Transport::File,
            host: None,
            port: None,
            redacted: raw.to_string(),
        }
    }

    /// `[user@]host:path`, as git and GitHub's clone buttons write SSH URLs.
    fn scp_like(raw: &str) -> Result<RemoteUrl, String> {
        let Some((authority, path)) = raw.split_once(':') else {
            return Err(format!(
                "{raw:?} is not a repository URL: use https://, ssh://, user@host:path, git:// or file://"
            ));
        };
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if host.is_empty() || path.is_empty() || host.contains('/') {
            return Err(format!("{raw:?} is not a repository URL"));
        }
        Ok(RemoteUrl {
            raw: raw.to_string(),
            transport: Transport::Ssh,
            host: Some(host.to_string()),
            port: None,
            redacted: raw.to_string(),
        })
    }

    /// The URL as configured, for libgit2 only.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The port an SSH connection goes to.
    pub fn ssh_port(&self) -> u16 {
        self.port.unwrap_or(SSH_PORT_DEFAULT)
    }
}

fn split_host_port(hostport: &str) -> Result<(String, Option<u16>), String> {
    // [::1]:2222 or host:2222 or host
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, tail)) => (h, tail.strip_prefix(':')),
            None => return Err("unterminated [ in the repository URL's host".into()),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let port = match port {
        None | Some("") => None,
        Some(p) => Some(
            p.parse::<u16>()
                .map_err(|_| format!("the repository URL's port {p:?} is not a number"))?,
        ),
    };
    Ok((host.to_ascii_lowercase(), port))
}

/// Replaces the password of every `scheme://user:password@` in `text` with `***`, and the whole
/// user part of an `http(s)://token@` (a token written as the user name).
pub fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rsplit_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
                // Over HTTP a lone user part is how tokens are written (https://TOKEN@host/...);
                // over SSH it is a login name (git@).
                let scheme: String = head[..i]
                    .chars()
                    .rev()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '+')
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<String>()
                    .to_ascii_lowercase();
                if matches!(scheme.as_str(), "http" | "https") && !userinfo.contains(':') {
                    out.push_str("***@");
                } else if userinfo.contains(':') {
                    out.push_str(user);
                    out.push_str(":***@");
                } else {
                    out.push_str(userinfo);
                    out.push('@');
                }
                out.push_str(host);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_and_hosts_are_recognised() {
        let u = RemoteUrl::parse("ssh://git@Example.com:2222/org/repo.git").unwrap();
        assert_eq!(u.transport, Transport::Ssh);
        assert_eq!(u.host.as_deref(), Some("example.com"));
        assert_eq!(u.ssh_port(), 2222);
        let u = RemoteUrl::parse("git@github.com:org/repo.git").unwrap();
        assert_eq!(
            (u.transport, u.host.as_deref(), u.ssh_port()),
            (Transport::Ssh, Some("github.com"), 22)
        );
        assert_eq!(
            RemoteUrl::parse("https://h/x").unwrap().transport,
            Transport::Https
        );
        assert_eq!(
            RemoteUrl::parse("http://h:8080/x").unwrap().port,
            Some(8080)
        );
        assert_eq!(
            RemoteUrl::parse("git://127.0.0.1:9418/x")
                .unwrap()
                .transport,
            Transport::Git
        );
        assert_eq!(
            RemoteUrl::parse("file:///srv/x.git").unwrap().transport,
            Transport::File
        );
        assert_eq!(
            RemoteUrl::parse("/srv/x.git").unwrap().transport,
            Transport::File
        );
        assert_eq!(
            RemoteUrl::parse("ssh://[::1]:22/x")
                .unwrap()
                .host
                .as_deref(),
            Some("::1")
        );
    }

    #[test]
    fn bad_urls_are_refused_with_a_reason() {
        assert!(RemoteUrl::parse("").unwrap_err().contains("empty"));
        assert!(RemoteUrl::parse("ftp://h/x")
            .unwrap_err()
            .contains("unsupported URL scheme"));
        assert!(RemoteUrl::parse("https://h:99999/x")
            .unwrap_err()
            .contains("port"));
        assert!(RemoteUrl::parse("just-a-word").is_err());
    }

    #[test]
    fn passwords_in_urls_never_survive_redaction() {
        let u = RemoteUrl::parse("https://bob:hunter2@git.example.com/org/repo.git").unwrap();
        assert_eq!(u.redacted, "https://bob:***@git.example.com/org/repo.git");
        assert!(!u.redacted.contains("hunter2"));
        assert_eq!(
            redact_userinfo("failed: https://x:tok@h/r and http://y:pw@h2:80/r."),
            "failed: https://x:***@h/r and http://y:***@h2:80/r."
        );
        assert_eq!(redact_userinfo("ssh://git@h/r"), "ssh://git@h/r");
    }

    #[test]
    fn a_token_written_as_the_user_of_an_http_url_is_redacted_whole() {
        let u = RemoteUrl::parse("https://ghp_S3cr3tT0ken@github.com/o/r.git").unwrap();
        assert_eq!(u.redacted, "https://***@github.com/o/r.git");
        assert_eq!(
            redact_userinfo("cannot reach HTTP://tok123@h/r: refused"),
            "cannot reach HTTP://***@h/r: refused"
        );
        // An SSH login name is no secret.
        let s = RemoteUrl::parse("ssh://git@github.com/o/r.git").unwrap();
        assert_eq!(s.redacted, "ssh://git@github.com/o/r.git");
    }
}
