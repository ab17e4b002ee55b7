//! Where the client's configuration comes from, in the order operators built on
//! controller-runtime use (and kubectl, but for in-cluster): the `--kubeconfig` flag; the
//! `KUBECONFIG` variable, a list of files merged as kubectl merges them; the in-cluster service
//! account; `$HOME/.kube/config`. `--context` picks a context of whichever kubeconfig is used, and
//! alone it skips the in-cluster step, which has no contexts.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Context as _;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// The source chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// `--kubeconfig FILE`.
    Flag(PathBuf),
    /// `KUBECONFIG`: one or more files, separated as `PATH` is.
    Env(OsString),
    /// The pod's service account.
    InCluster,
    /// `$HOME/.kube/config`.
    Home(PathBuf),
}

/// What the process was given, read by [`Given::from_env`].
#[derive(Clone, Debug, Default)]
pub struct Given {
    /// `--kubeconfig`.
    pub flag: Option<PathBuf>,
    /// `KUBECONFIG`, unless empty.
    pub env: Option<OsString>,
    /// `--context`.
    pub context: Option<String>,
    /// Whether `KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT` are set.
    pub in_cluster: bool,
    /// `$HOME`.
    pub home: Option<PathBuf>,
}

impl Given {
    /// The flags, and the environment of this process.
    pub fn from_env(flag: Option<PathBuf>, context: Option<String>) -> Self {
        let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
        Self {
            flag,
            env: std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()),
            context,
            in_cluster: set("KUBERNETES_SERVICE_HOST") && set("KUBERNETES_SERVICE_PORT"),
            home: std::env::var_os("HOME").map(PathBuf::from),
        }
    }

    /// The first source that applies.
    pub fn source(&self) -> anyhow::Result<Source> {
        if let Some(f) = &self.flag {
            return Ok(Source::Flag(f.clone()));
        }
        if let Some(e) = &self.env {
            return Ok(Source::Env(e.clone()));
        }
        if self.in_cluster && self.context.is_none() {
            return Ok(Source::InCluster);
        }
        match &self.home {
            Some(h) => Ok(Source::Home(h.join(".kube").join("config"))),
            None => anyhow::bail!(
                "no kubeconfig: give --kubeconfig or KUBECONFIG, run in a pod, or set HOME"
            ),
        }
    }
}

/// The client configuration from `given`.
pub async fn load(given: &Given) -> anyhow::Result<kube::Config> {
    let source = given.source()?;
    let kubeconfig = match &source {
        Source::InCluster => {
            return kube::Config::incluster().context("in-cluster configuration");
        }
        Source::Flag(path) | Source::Home(path) => Kubeconfig::read_from(path)
            .with_context(|| format!("reading kubeconfig {}", path.display()))?,
        Source::Env(list) => {
            let paths: Vec<PathBuf> = std::env::split_paths(list)
                .filter(|p| !p.as_os_str().is_empty())
                .collect();
            paths
                .iter()
                .try_fold(Kubeconfig::default(), |merged, p| {
                    Kubeconfig::read_from(p)
                        .with_context(|| format!("reading kubeconfig {}", p.display()))
                        .and_then(|c| merged.merge(c).context("merging KUBECONFIG's files"))
                })
                .with_context(|| format!("KUBECONFIG={}", list.to_string_lossy()))?
        }
    };
    let opts = KubeConfigOptions {
        context: given.context.clone(),
        ..Default::default()
    };
    kube::Config::from_custom_kubeconfig(kubeconfig, &opts)
        .await
        .with_context(|| match &given.context {
            Some(c) => format!("using context {c} of {source:?}"),
            None => format!("using {source:?}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given() -> Given {
        Given {
            home: Some("/home/u".into()),
            ..Given::default()
        }
    }

    #[test]
    fn the_flag_then_kubeconfig_then_in_cluster_then_home() {
        let all = Given {
            flag: Some("/f".into()),
            env: Some("/a:/b".into()),
            in_cluster: true,
            ..given()
        };
        assert_eq!(all.source().unwrap(), Source::Flag("/f".into()));
        let no_flag = Given { flag: None, ..all };
        assert_eq!(no_flag.source().unwrap(), Source::Env("/a:/b".into()));
        let no_env = Given {
            env: None,
            ..no_flag
        };
        assert_eq!(no_env.source().unwrap(), Source::InCluster);
        let outside = Given {
            in_cluster: false,
            ..no_env
        };
        assert_eq!(
            outside.source().unwrap(),
            Source::Home("/home/u/.kube/config".into())
        );
    }

    #[test]
    fn a_context_alone_reads_the_users_kubeconfig_even_in_a_pod() {
        let g = Given {
            context: Some("staging".into()),
            in_cluster: true,
            ..given()
        };
        assert_eq!(
            g.source().unwrap(),
            Source::Home("/home/u/.kube/config".into())
        );
    }

    #[tokio::test]
    async fn a_colon_separated_kubeconfig_is_merged_and_a_context_of_the_second_file_works() {
        let dir = std::env::temp_dir().join(format!("kc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str, server: &str| {
            let path = dir.join(name);
            let text = format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    server: {server}\n\
                 users:\n- name: {name}\n  user:\n    token: t\ncontexts:\n- name: {name}\n  context:\n    \
                 cluster: {name}\n    user: {name}\ncurrent-context: {name}\n"
            );
            std::fs::write(&path, text).unwrap();
            path
        };
        let (a, b) = (
            file("one", "https://127.0.0.1:6443"),
            file("two", "https://127.0.0.2:6443"),
        );
        let list = std::env::join_paths([&a, &b]).unwrap();
        let g = |context: Option<&str>| Given {
            env: Some(list.clone()),
            context: context.map(str::to_owned),
            ..given()
        };
        let first = load(&g(None)).await.unwrap();
        assert_eq!(
            first.cluster_url.host(),
            Some("127.0.0.1"),
            "first file's current context"
        );
        let second = load(&g(Some("two"))).await.unwrap();
        assert_eq!(second.cluster_url.host(), Some("127.0.0.2"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
