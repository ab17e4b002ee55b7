//! What trust costs, each against its baseline measured in the same run, rounds alternating.
//!
//! `cargo run -p gitops-reverser-runtime --release --example trust_bench -- [secrets] [commits] [rounds]`
//!
//! - **Sealing**: one commit of `secrets` Secrets (four values each) written by the executor as
//!   sealed files (the core's fingerprint, then SOPS with AES-256-GCM and an age-wrapped data key
//!   per file) against the same Secrets redacted, into a fresh bare repository each round.
//! - **Signing**: `commits` commits of one file each, signed with an ed25519 SSH key against
//!   unsigned.

use std::sync::Arc;
use std::time::Instant;

use git2::Repository;
use gitops_reverser_core::io::{FileBody, Identity, PlannedCommit};
use gitops_reverser_core::seal::{SealKey, SealedFile, Sealing};
use gitops_reverser_core::{RawObject, TypeRules};
use gitops_reverser_runtime::git::commit::write_commits_signed;
use gitops_reverser_runtime::git::sign::Signer;
use serde_json::json;

const RECIPIENT: &str = "age16tjsgvucfgtk0wxch0cncf09m83chnnl455599azkkxsraucu4sqle5wvm";

fn identity(name: &str) -> Identity {
    Identity {
        name: name.into(),
        email: format!("{name}@bench"),
    }
}

fn commit(writes: Vec<(String, Option<FileBody>)>, i: i64) -> PlannedCommit {
    PlannedCommit {
        author: identity("alice"),
        author_time_ms: 1_700_000_000_000 + i,
        committer: identity("gitops-reverser"),
        commit_time_ms: 1_700_000_000_000 + i,
        message: format!("[UPDATE] v1/secrets/bench/s{i}\n\nReverser-Op: bench-{i}\n"),
        writes,
    }
}

fn secret(i: usize) -> RawObject {
    RawObject::from(
        json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": format!("s{i}"), "namespace": "bench", "uid": format!("u{i}"),
                     "resourceVersion": "1", "labels": {"app": "bench"}},
        "data": {"username": "YWxpY2U=", "password": format!("cGFzc3dvcmQt{i:08}"),
                 "host": "ZGIuYmVuY2guc3ZjLmNsdXN0ZXIubG9jYWw=", "port": "NTQzMg=="}}),
    )
}

/// Seconds to write `commits` into a fresh bare repository.
fn write(commits: &[PlannedCommit], signer: Option<&Signer>) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init_bare(dir.path()).unwrap();
    let started = Instant::now();
    write_commits_signed(&repo, None, commits, signer).unwrap();
    started.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ssh_key() -> Signer {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("k");
    let ok = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&file)
        .status()
        .expect("ssh-keygen runs")
        .success();
    assert!(ok);
    Signer::from_openssh(&std::fs::read(&file).unwrap()).unwrap()
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (secrets, commits, rounds) = (
        args.first().copied().unwrap_or(1_000),
        args.get(1).copied().unwrap_or(1_000),
        args.get(2).copied().unwrap_or(5),
    );
    let key = SealKey([9; 32]);
    let sealing = Arc::new(Sealing {
        recipients: vec![RECIPIENT.into()],
        extra_resources: vec![],
    });
    let objects: Vec<RawObject> = (0..secrets).map(secret).collect();
    let path = |i: usize| format!("v1/secrets/bench/s{i}.yaml");
    let (mut redacted, mut sealed, mut fingerprints) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let plain: Vec<_> = objects
            .iter()
            .enumerate()
            .map(|(i, o)| {
                (
                    path(i),
                    Some(FileBody::Object(o.clone(), TypeRules::Secret)),
                )
            })
            .collect();
        redacted.push(write(&[commit(plain, 0)], None));
        // The core's part (render and fingerprint), then the executor's (encrypt and store).
        let started = Instant::now();
        let files: Vec<_> = objects
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let s = SealedFile::new(o.clone(), TypeRules::Secret, &key, sealing.clone());
                (path(i), Some(FileBody::Sealed(Arc::new(s.unwrap()))))
            })
            .collect();
        let core_s = started.elapsed().as_secs_f64();
        fingerprints.push(core_s);
        sealed.push(core_s + write(&[commit(files, 0)], None));
    }
    let (r, s, f) = (median(redacted), median(sealed), median(fingerprints));
    println!(
        "sealing: {secrets} Secrets in one commit: redacted {:.1} ms, sealed {:.1} ms ({:.1}x; {:.1} µs more per Secret, of which the core's fingerprint {:.1} µs)",
        r * 1e3,
        s * 1e3,
        s / r,
        (s - r) / secrets as f64 * 1e6,
        f / secrets as f64 * 1e6
    );

    let signer = ssh_key();
    let batch: Vec<PlannedCommit> = (0..commits)
        .map(|i| {
            let body = FileBody::Yaml(Arc::from(format!("k: v{i}\n").as_bytes()));
            commit(
                vec![("v1/configmaps/bench/c.yaml".into(), Some(body))],
                i as i64,
            )
        })
        .collect();
    let (mut unsigned, mut signed) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        unsigned.push(write(&batch, None));
        signed.push(write(&batch, Some(&signer)));
    }
    let (u, s) = (median(unsigned), median(signed));
    println!(
        "signing: {commits} commits: unsigned {:.1} ms, signed {:.1} ms ({:.2}x; {:.1} µs more per commit)",
        u * 1e3,
        s * 1e3,
        s / u,
        (s - u) / commits as f64 * 1e6
    );
}
