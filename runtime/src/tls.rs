//! The webhook's serving certificate, read from files and re-read when they change, or installed
//! from memory by the self-managed certificates ([`crate::certs`]).
//!
//! Checked per connection by the files' modification time and size (two `stat`s): a Secret volume
//! rotates by swapping a symlink, which breaks an inotify watch but not this.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

type Stamp = [(Option<SystemTime>, u64); 2];

/// A certificate chain and its private key.
pub type Pair = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// What is served now: the configuration and the pair it was built from.
struct Served {
    stamp: Stamp,
    config: Arc<ServerConfig>,
    certs: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
}

/// A serving configuration that follows its certificate and key files, or what was installed.
pub struct ReloadingTls {
    /// The files followed; `None` when the pair is installed with [`Self::install_pem`].
    files: Option<(PathBuf, PathBuf)>,
    /// When set, clients must present a certificate this CA (PEM bundle) signed.
    client_ca: Option<PathBuf>,
    state: Mutex<Option<Served>>,
}

fn stamp_of(path: &Path) -> std::io::Result<(Option<SystemTime>, u64)> {
    let m = std::fs::metadata(path)?;
    Ok((m.modified().ok(), m.len()))
}

impl ReloadingTls {
    /// Follows `cert` (PEM chain) and `key` (PEM private key).
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            files: Some((cert.into(), key.into())),
            client_ca: None,
            state: Mutex::new(None),
        }
    }

    /// Serves whatever pair [`Self::install_pem`] installs last; nothing until then.
    pub fn managed() -> Self {
        Self {
            files: None,
            client_ca: None,
            state: Mutex::new(None),
        }
    }

    /// Serves `cert` (PEM chain) and `key` (PEM private key) from the next handshake on.
    pub fn install_pem(&self, cert: &[u8], key: &[u8]) -> Result<(), String> {
        let served = self.build(cert, key, "the self-managed certificate", Stamp::default())?;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *state = Some(served);
        Ok(())
    }

    /// Requires every client to present a certificate signed by a CA of `bundle` (PEM): the API
    /// server's webhook client certificate (`--admission-control-config-file`). Read with the
    /// serving pair, so a rotation of the three is picked up together.
    pub fn with_client_ca(mut self, bundle: impl Into<PathBuf>) -> Self {
        self.client_ca = Some(bundle.into());
        self
    }

    /// Whether a certificate has been loaded.
    pub fn loaded(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// The current configuration, reloaded if the files changed. When the new files are broken
    /// (mid-rotation, say) the last good configuration stays in use and the error is returned only
    /// if there is none.
    pub fn current(&self) -> Result<Arc<ServerConfig>, String> {
        self.with_served(|s| s.config.clone())
    }

    /// The chain and key served now (reloaded as [`Self::current`] does): the operator's own
    /// certificate, which replicas present to each other.
    pub fn pair(&self) -> Result<Pair, String> {
        self.with_served(|s| (s.certs.clone(), s.key.clone_key()))
    }

    fn with_served<T>(&self, f: impl FnOnce(&Served) -> T) -> Result<T, String> {
        let Some((cert, key)) = &self.files else {
            let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            return match state.as_ref() {
                Some(s) => Ok(f(s)),
                None => Err("the self-managed certificate is not issued yet".into()),
            };
        };
        let stamp = [stamp_of(cert), stamp_of(key)];
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = match (&stamp, state.as_ref()) {
            ([Ok(c), Ok(k)], Some(s)) if s.stamp == [*c, *k] => return Ok(f(s)),
            ([Ok(c), Ok(k)], _) => self.load(cert, key, [*c, *k]),
            ([Err(e), _], _) => Err(format!("{}: {e}", cert.display())),
            ([_, Err(e)], _) => Err(format!("{}: {e}", key.display())),
        };
        match (fresh, state.as_ref()) {
            (Ok(served), _) => {
                if state.is_some() {
                    tracing::info!(cert = %cert.display(), "serving certificate reloaded");
                }
                let out = f(&served);
                *state = Some(served);
                Ok(out)
            }
            (Err(e), Some(s)) => {
                tracing::warn!("serving certificate not reloaded, keeping the previous one: {e}");
                Ok(f(s))
            }
            (Err(e), None) => Err(e),
        }
    }

    fn load(&self, cert: &Path, key: &Path, stamp: Stamp) -> Result<Served, String> {
        let cert_pem = std::fs::read(cert).map_err(|e| format!("{}: {e}", cert.display()))?;
        let key_pem = std::fs::read(key).map_err(|e| format!("{}: {e}", key.display()))?;
        self.build(
            &cert_pem,
            &key_pem,
            &format!("{} and {}", cert.display(), key.display()),
            stamp,
        )
    }

    /// A serving configuration from PEM text; `what` names its source in errors.
    fn build(&self, cert: &[u8], key: &[u8], what: &str, stamp: Stamp) -> Result<Served, String> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{what}: {e}"))?;
        if certs.is_empty() {
            return Err(format!("{what}: no PEM certificate"));
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| format!("{what}: {e}"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(bundle) => {
                let mut roots = rustls::RootCertStore::empty();
                for ca in CertificateDer::pem_file_iter(bundle)
                    .map_err(|e| format!("{}: {e}", bundle.display()))?
                {
                    let ca = ca.map_err(|e| format!("{}: {e}", bundle.display()))?;
                    roots
                        .add(ca)
                        .map_err(|e| format!("{}: {e}", bundle.display()))?;
                }
                if roots.is_empty() {
                    return Err(format!("{}: no PEM certificate", bundle.display()));
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| format!("{}: {e}", bundle.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut cfg = builder
            .with_single_cert(certs.clone(), key.clone_key())
            .map_err(|e| format!("{what}: {e}"))?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Served {
            stamp,
            config: Arc::new(cfg),
            certs,
            key: Arc::new(key),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(dir: &Path, name: &str) {
        let ok = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args([
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(dir.join("tls.key"))
            .arg("-out")
            .arg(dir.join("tls.crt"))
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl runs")
            .success();
        assert!(ok);
    }

    /// A Secret volume: `tls.crt` and `tls.key` are links into `..data`, itself a link to a
    /// timestamped folder that the kubelet swaps on rotation.
    fn secret_volume(root: &Path, version: &str) {
        let target = root.join(version);
        std::fs::create_dir_all(&target).unwrap();
        self_signed(&target, version);
        let tmp = root.join("..data_tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&target, &tmp).unwrap();
        std::fs::rename(&tmp, root.join("..data")).unwrap();
        for f in ["tls.crt", "tls.key"] {
            let link = root.join(f);
            if !link.exists() {
                std::os::unix::fs::symlink(root.join("..data").join(f), link).unwrap();
            }
        }
    }

    #[test]
    fn a_rotated_secret_volume_is_picked_up_and_a_broken_one_keeps_the_last_good_pair() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let root = tempfile::tempdir().unwrap();
        secret_volume(root.path(), "v1");
        let tls = ReloadingTls::new(root.path().join("tls.crt"), root.path().join("tls.key"));
        let first = tls.current().unwrap();
        assert!(
            Arc::ptr_eq(&first, &tls.current().unwrap()),
            "unchanged files are not re-read"
        );

        secret_volume(root.path(), "v2");
        let second = tls.current().unwrap();
        assert!(
            !Arc::ptr_eq(&first, &second),
            "the swapped link is followed"
        );

        // Mid-rotation garbage: the previous pair stays in use.
        std::fs::write(
            root.path().join("v2/tls.crt"),
            "not a certificate, longer than before",
        )
        .unwrap();
        assert!(Arc::ptr_eq(&second, &tls.current().unwrap()));
    }

    #[test]
    fn missing_files_are_an_error_naming_the_file() {
        let tls = ReloadingTls::new("/nonexistent/tls.crt", "/nonexistent/tls.key");
        let err = tls.current().unwrap_err();
        assert!(err.contains("/nonexistent/tls.crt"), "{err}");
        assert!(!tls.loaded());
    }
}
