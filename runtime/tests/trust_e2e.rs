//! Trust in what lands in Git, end to end against a real kube-apiserver + etcd and a real git
//! daemon: Secrets sealed with SOPS for age recipients (decrypted by the real `sops`, restored by
//! `kubectl apply`), and commits signed with an SSH key (checked by `git verify-commit`).

mod support;

use std::path::Path;
use std::process::Command;

use support::cluster::{
    await_rule, eventually, namespace, repo_config, watch_rule, Cluster, Operator, Remote,
};
use support::{git, require};

/// An age identity made by `age-keygen`: (key file, recipient).
fn age_identity(dir: &Path) -> (std::path::PathBuf, String) {
    let file = dir.join("age.txt");
    let out = Command::new(require("age-keygen", &[]))
        .arg("-o")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_string();
    (file, recipient)
}

fn sops_decrypt(text: &str, key: &Path, dir: &Path) -> String {
    let file = dir.join("sealed.yaml");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(require("sops", &[]))
        .args(["--decrypt", "--input-type", "yaml", "--output-type", "yaml"])
        .arg(&file)
        .env("SOPS_AGE_KEY_FILE", key)
        .env_remove("SOPS_AGE_KEY")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sops --decrypt failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn secret(ns: &str, name: &str, data: &[(&str, &str)]) -> String {
    let data: Vec<String> = data.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {ns}}}\ntype: Opaque\ndata: {{{}}}\n",
        data.join(", ")
    )
}

/// Every commit of the remote's history with its patch.
fn log_patch(remote: &Remote) -> String {
    git(&remote.repo, &["log", "-p", "--all"])
}

#[test]
fn secrets_land_sealed_restore_with_sops_and_are_committed_only_when_they_change() {
    let c = Cluster::start();
    let remote = Remote::new();
    let dir = tempfile::tempdir().unwrap();
    let mut op = Operator::start(&c, dir.path(), &[]);
    namespace(&c, "team-a");
    let (key, recipient) = age_identity(dir.path());
    c.apply(
        "admin",
        &repo_config(
            "team-a",
            &remote.url(),
            &format!("  encryption: {{sops: {{ageRecipients: [{recipient}]}}}}\n"),
        ),
    );
    c.apply(
        "admin",
        &watch_rule(
            "team-a",
            "secrets",
            "clusters/prod",
            "[{version: v1, resource: secrets}]",
        ),
    );
    await_rule(&c, &op, "team-a", "secrets");
    let (reason, _) = c.await_condition("gitrepoconfig/repo", Some("team-a"), "Encryption", "True");
    assert_eq!(reason, "SopsAge");

    // "hunter2" and "alice-db" in base64.
    let (password, user) = ("aHVudGVyMg==", "YWxpY2UtZGI=");
    c.apply(
        "alice",
        &secret(
            "team-a",
            "db",
            &[("password", password), ("username", user)],
        ),
    );
    let created = remote.await_commit("[CREATE] v1/secrets/team-a/db");
    assert_eq!(created, "alice|[CREATE] v1/secrets/team-a/db");
    let path = "clusters/prod/v1/secrets/team-a/db.yaml";
    let sealed = remote.file(path).unwrap();
    assert!(sealed.contains("ENC[AES256_GCM,data:"), "{sealed}");
    assert!(sealed.contains(&recipient), "{sealed}");

    // The real sops gives the values back, and the decrypted file restores the Secret.
    let plain = sops_decrypt(&sealed, &key, dir.path());
    let doc: serde_yaml::Value = serde_yaml::from_str(&plain).unwrap();
    assert_eq!(doc["data"]["password"].as_str(), Some(password), "{plain}");
    assert_eq!(doc["data"]["username"].as_str(), Some(user), "{plain}");
    namespace(&c, "restored");
    let mut restore = doc.clone();
    restore["metadata"]["namespace"] = "restored".into();
    c.apply("admin", &serde_yaml::to_string(&restore).unwrap());
    let data = |ns: &str| c.jsonpath(&["get", "secret", "db", "-n", ns], "{.data}");
    assert_eq!(data("restored"), data("team-a"));

    // Neither a value nor its base64 anywhere in history.
    let history = log_patch(&remote);
    for needle in [password, user, "hunter2", "alice-db"] {
        assert!(!history.contains(needle), "{needle} is in git log -p");
    }

    // A restart and a relist change nothing: the next commits are only the new changes.
    let before = remote.log();
    op.stop();
    op.restart(&[]);
    c.apply("bob", &secret("team-a", "other", &[("token", "dDBrM24=")]));
    remote.await_commit("[CREATE] v1/secrets/team-a/other");
    // A relist forced by a rule that now feeds the folder another stream as well.
    c.apply(
        "admin",
        &watch_rule(
            "team-a",
            "secrets",
            "clusters/prod",
            "[{version: v1, resource: secrets}, {version: v1, resource: configmaps}]",
        ),
    );
    await_rule(&c, &op, "team-a", "secrets");
    c.apply(
        "carol",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: marker, namespace: team-a}\ndata: {k: v}\n",
    );
    remote.await_commit("[CREATE] v1/configmaps/team-a/marker");
    let after = remote.log();
    assert_eq!(
        after[before.len()..],
        [
            "bob|[CREATE] v1/secrets/team-a/other".to_string(),
            "carol|[CREATE] v1/configmaps/team-a/marker".to_string()
        ],
        "an unchanged Secret was committed again: {after:#?}"
    );
    assert_eq!(
        remote.file(path).unwrap(),
        sealed,
        "the sealed file was rewritten"
    );

    // One value changes: exactly one commit, by its author, that decrypts to the new value.
    c.apply(
        "alice",
        &secret(
            "team-a",
            "db",
            &[("password", "czNjcmV0"), ("username", user)],
        ),
    );
    let updated = remote.await_commit("[UPDATE] v1/secrets/team-a/db");
    assert_eq!(updated, "alice|[UPDATE] v1/secrets/team-a/db");
    let plain = sops_decrypt(&remote.file(path).unwrap(), &key, dir.path());
    assert!(plain.contains("password: czNjcmV0"), "{plain}");
    assert_eq!(remote.log().len(), after.len() + 1);

    // A recipient that cannot be used: a status reason, and no Secret file of that repository.
    namespace(&c, "team-b");
    let remote_b = Remote::new();
    c.apply(
        "admin",
        &repo_config(
            "team-b",
            &remote_b.url(),
            "  encryption: {sops: {ageRecipients: [age1notarecipient]}}\n",
        ),
    );
    c.apply(
        "admin",
        &watch_rule(
            "team-b",
            "all",
            "",
            "[{version: v1, resource: secrets}, {version: v1, resource: configmaps}]",
        ),
    );
    let (reason, message) =
        c.await_condition("gitrepoconfig/repo", Some("team-b"), "Encryption", "False");
    assert_eq!(reason, "EncryptionInvalid");
    assert!(message.contains("ageRecipients[0]"), "{message}");
    await_rule(&c, &op, "team-b", "all");
    c.apply("alice", &secret("team-b", "db", &[("password", password)]));
    c.apply(
        "alice",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: after, namespace: team-b}\ndata: {k: v}\n",
    );
    remote_b.await_commit("[CREATE] v1/configmaps/team-b/after");
    assert_eq!(remote_b.file("v1/secrets/team-b/db.yaml"), None);
    assert!(!log_patch(&remote_b).contains(password));
    assert!(
        op.log()
            .contains("not written to GitRepoConfig team-b/repo"),
        "the withheld Secret is logged"
    );
}

/// Runs `ssh-keygen` to make a key pair without a passphrase.
fn ssh_key(dir: &Path, name: &str, kind: &str) -> (String, String) {
    let file = dir.join(name);
    let out = Command::new(require("ssh-keygen", &[]))
        .args(["-q", "-t", kind, "-N", "", "-C", "reverser@test", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        std::fs::read_to_string(&file).unwrap(),
        std::fs::read_to_string(file.with_extension("pub")).unwrap(),
    )
}

fn signing_secret(ns: &str, private_key: &str) -> String {
    let indented: String = private_key.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: signer, namespace: {ns}, labels: {{configbutler.ai/credentials: \"true\"}}}}\ntype: Opaque\nstringData:\n  ssh-privatekey: |\n{indented}"
    )
}

/// Whether `git verify-commit` accepts `commit` with `allowed` as the allowed-signers file.
fn verifies(remote: &Remote, allowed: &Path, commit: &str) -> bool {
    let out = Command::new("git")
        .args(["-c", "gpg.format=ssh", "-c"])
        .arg(format!("gpg.ssh.allowedSignersFile={}", allowed.display()))
        .args(["verify-commit", commit])
        .current_dir(&remote.repo)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    out.status.success()
}

#[test]
fn every_commit_is_signed_with_the_configured_key_and_an_outside_commit_is_not() {
    let c = Cluster::start();
    let remote = Remote::new();
    let dir = tempfile::tempdir().unwrap();
    let op = Operator::start(&c, dir.path(), &[]);
    namespace(&c, "team-a");
    let (private, public) = ssh_key(dir.path(), "signer", "ed25519");
    c.apply("admin", &signing_secret("team-a", &private));
    c.apply(
        "admin",
        &repo_config(
            "team-a",
            &remote.url(),
            "  signing: {secretRef: {name: signer}}\n",
        ),
    );
    c.apply(
        "admin",
        &watch_rule("team-a", "cms", "", "[{version: v1, resource: configmaps}]"),
    );
    await_rule(&c, &op, "team-a", "cms");
    let (_, message) = c.await_condition("gitrepoconfig/repo", Some("team-a"), "Signing", "True");
    let key_b64 = public.split_whitespace().nth(1).unwrap();
    assert!(
        message.contains(key_b64),
        "the status shows the public key: {message}"
    );

    let cm = |name: &str, v: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: team-a}}\ndata: {{k: \"{v}\"}}\n")
    };
    c.apply("alice", &cm("one", "1"));
    remote.await_commit("[CREATE] v1/configmaps/team-a/one");
    let outside = support::outside_commit(&remote.repo, "main", "notes.txt", "by hand\n");
    c.apply("bob", &cm("two", "2"));
    remote.await_commit("[CREATE] v1/configmaps/team-a/two");
    c.apply("alice", &cm("one", "3"));
    remote.await_commit("[UPDATE] v1/configmaps/team-a/one");

    let allowed = dir.path().join("allowed_signers");
    std::fs::write(
        &allowed,
        format!("gitops-reverser@configbutler.ai {public}"),
    )
    .unwrap();
    let commits = git(&remote.repo, &["rev-list", "main"]);
    let mut ours = 0;
    for id in commits.lines() {
        if id == outside {
            assert!(
                !verifies(&remote, &allowed, id),
                "an outside commit verified"
            );
        } else {
            assert!(
                verifies(&remote, &allowed, id),
                "commit {id} does not verify"
            );
            ours += 1;
        }
    }
    assert!(ours >= 3, "{commits}");

    // An RSA key (or any key that cannot sign): Ready=False, and nothing unsigned is pushed.
    namespace(&c, "team-b");
    let remote_b = Remote::new();
    let (rsa, _) = ssh_key(dir.path(), "rsa", "rsa");
    c.apply("admin", &signing_secret("team-b", &rsa));
    c.apply(
        "admin",
        &repo_config(
            "team-b",
            &remote_b.url(),
            "  signing: {secretRef: {name: signer}}\n",
        ),
    );
    c.apply(
        "admin",
        &watch_rule("team-b", "cms", "", "[{version: v1, resource: configmaps}]"),
    );
    let (reason, message) = c.await_ready("gitrepoconfig/repo", Some("team-b"), "False");
    assert_eq!(reason, "SigningKeyInvalid");
    assert!(message.contains("ssh-rsa"), "{message}");
    c.apply(
        "alice",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: team-b}\ndata: {k: v}\n",
    );
    // The push is attempted and refused by the executor; the remote never gets a branch.
    eventually("the refused push in the log", || {
        op.log().contains("SigningKeyInvalid").then_some(())
    });
    assert!(!remote_b.has_branch(), "an unsigned commit was pushed");
}
