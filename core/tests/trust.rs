//! Trust in what lands in Git, as the core sees it: Secrets sealed for age recipients (and
//! rewritten only when they changed), sealing that cannot be used, and signing keys.

mod common;

use common::*;
use gitops_reverser_core::config::{Condition, CrRef};
use gitops_reverser_core::io::{Input, Output, SigningVerdict, WatchEvent};
use gitops_reverser_core::seal::SealKey;
use gitops_reverser_core::{Core, CoreConfig};
use serde_json::{json, Value};

const ALICE: &str = "age16tjsgvucfgtk0wxch0cncf09m83chnnl455599azkkxsraucu4sqle5wvm";
const BOB: &str = "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq";

fn config() -> CoreConfig {
    CoreConfig {
        seal_key: Some(SealKey([42; 32])),
        ..CoreConfig::default()
    }
}

fn repo(extra: Value) -> Value {
    let mut r = json!({"repoURL": "https://git.example/org/repo", "allowedBranches": ["main"]});
    for (k, v) in extra.as_object().unwrap() {
        r[k] = v.clone();
    }
    r
}

fn sealed_repo(recipients: &[&str]) -> Value {
    repo(json!({"encryption": {"sops": {"ageRecipients": recipients}}}))
}

fn secrets() -> gitops_reverser_core::Gvr {
    gvr("", "v1", "secrets")
}

fn secret(password_b64: &str, rv: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "team-a",
        "uid": "u-1", "resourceVersion": rv}, "type": "Opaque", "data": {"password": password_b64}})
}

/// Lists the Secrets stream with `objects`.
fn relist(h: &mut Harness, objects: &[Value]) {
    h.input(Input::Watch(secrets(), WatchEvent::Init));
    for o in objects {
        h.input(Input::Watch(
            secrets(),
            WatchEvent::InitApply(o.clone().into()),
        ));
    }
    h.input(Input::Watch(secrets(), WatchEvent::InitDone));
}

fn apply(h: &mut Harness, o: Value) {
    h.input(Input::Watch(secrets(), WatchEvent::Apply(o.into())));
}

/// The GitRepoConfig's last status.
fn repo_status(h: &Harness) -> Vec<Condition> {
    h.outputs
        .iter()
        .rev()
        .find_map(|o| match o {
            Output::Status(CrRef::GitRepoConfig(n), c) if *n == repo_name() => Some(c.clone()),
            _ => None,
        })
        .expect("a status for the GitRepoConfig")
}

fn condition(h: &Harness, type_: &str) -> Condition {
    repo_status(h)
        .into_iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {:?}", repo_status(h)))
}

#[test]
fn a_sealed_secret_goes_to_the_executor_encrypted_and_is_never_rewritten_unchanged() {
    let mut h = Harness::with_repo(
        config(),
        sealed_repo(&[ALICE]),
        &[("", "v1", "secrets")],
        "",
    );
    relist(&mut h, &[]);
    h.answer_all();
    apply(&mut h, secret("aHVudGVyMg==", "1"));
    let pushed = h.flush_and_push();
    assert_eq!(pushed.len(), 1);
    let body = pushed[0].writes[0].1.as_ref().unwrap();
    assert!(body.sealed().is_some(), "{body:?}");
    let file = String::from_utf8(h.files["v1/secrets/team-a/db.yaml"].to_vec()).unwrap();
    assert!(!file.contains("aHVudGVyMg=="), "{file}");
    let sealed_value = file
        .lines()
        .find_map(|l| l.trim().strip_prefix("password: \""))
        .unwrap();
    assert_eq!(unseal_value(sealed_value).as_deref(), Some("aHVudGVyMg=="));
    let first = h.files["v1/secrets/team-a/db.yaml"].clone();

    // A relist, a resync duplicate, a status-only change: nothing to write.
    relist(&mut h, &[secret("aHVudGVyMg==", "1")]);
    apply(&mut h, secret("aHVudGVyMg==", "2"));
    assert!(h.flush_and_push().is_empty());

    // A restart: a new core knows the file only by the listing, which reports its fingerprint.
    let files = h.files.clone();
    let head = h.head.clone();
    let mut h = Harness::with_repo(
        config(),
        sealed_repo(&[ALICE]),
        &[("", "v1", "secrets")],
        "",
    );
    h.files = files;
    h.head = head;
    relist(&mut h, &[secret("aHVudGVyMg==", "2")]);
    assert!(
        h.flush_and_push().is_empty(),
        "a restart rewrote an unchanged Secret"
    );
    assert_eq!(h.files["v1/secrets/team-a/db.yaml"], first);

    // One value changes: exactly one commit.
    apply(&mut h, secret("czNjcmV0", "3"));
    let pushed = h.flush_and_push();
    assert_eq!(pushed.len(), 1);
    assert_ne!(h.files["v1/secrets/team-a/db.yaml"], first);
}

#[test]
fn a_redacting_repository_makes_no_commit_when_only_a_value_changes() {
    let mut h = Harness::with_rule(&[("", "v1", "secrets")], "");
    relist(&mut h, &[]);
    h.answer_all();
    apply(&mut h, secret("aHVudGVyMg==", "1"));
    assert_eq!(h.flush_and_push().len(), 1);
    apply(&mut h, secret("czNjcmV0", "2"));
    assert!(
        h.flush_and_push().is_empty(),
        "the redacted file did not change"
    );
}

#[test]
fn new_recipients_list_the_secrets_again_and_every_file_is_encrypted_for_them() {
    let mut h = Harness::with_repo(
        config(),
        sealed_repo(&[ALICE]),
        &[("", "v1", "secrets")],
        "",
    );
    relist(&mut h, &[]);
    h.answer_all();
    apply(&mut h, secret("aHVudGVyMg==", "1"));
    h.flush_and_push();
    let before = h.files["v1/secrets/team-a/db.yaml"].clone();
    h.outputs.clear();
    let spec = serde_json::from_value(sealed_repo(&[ALICE, BOB])).unwrap();
    h.input(Input::GitRepoConfig(repo_name(), Some(spec)));
    assert!(
        h.outputs.contains(&Output::Resync(secrets())),
        "{:?}",
        h.outputs
    );
    relist(&mut h, &[secret("aHVudGVyMg==", "1")]);
    let pushed = h.flush_and_push();
    assert_eq!(
        pushed.len(),
        1,
        "one [RESYNC] commit re-encrypts the Secrets"
    );
    assert!(
        pushed[0].message.starts_with("[RESYNC]"),
        "{}",
        pushed[0].message
    );
    let after = String::from_utf8(h.files["v1/secrets/team-a/db.yaml"].to_vec()).unwrap();
    assert_ne!(h.files["v1/secrets/team-a/db.yaml"], before);
    assert!(after.contains(BOB) && after.contains(ALICE), "{after}");
}

#[test]
fn a_bad_recipient_withholds_secrets_keeps_their_files_and_writes_everything_else() {
    let resources = [("", "v1", "secrets"), ("", "v1", "configmaps")];
    let mut h = Harness::with_repo(config(), sealed_repo(&[ALICE]), &resources, "");
    h.seed_empty();
    apply(&mut h, secret("aHVudGVyMg==", "1"));
    h.flush_and_push();
    let kept = h.files["v1/secrets/team-a/db.yaml"].clone();
    // A typo in the recipients.
    let spec = serde_json::from_value(sealed_repo(&["age1notarecipient"])).unwrap();
    h.input(Input::GitRepoConfig(repo_name(), Some(spec)));
    let enc = condition(&h, "Encryption");
    assert!(!enc.status);
    assert_eq!(enc.reason, "EncryptionInvalid");
    assert!(enc.message.contains("ageRecipients[0]"), "{}", enc.message);
    assert!(
        condition(&h, "Ready").status,
        "the rest of the repository still works"
    );
    relist(&mut h, &[secret("czNjcmV0", "2")]);
    h.input(Input::Watch(gvr("", "v1", "configmaps"), WatchEvent::Init));
    h.input(Input::Watch(
        gvr("", "v1", "configmaps"),
        WatchEvent::InitApply(
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "app", "namespace": "team-a"}, "data": {"k": "v"}})
            .into(),
        ),
    ));
    h.input(Input::Watch(
        gvr("", "v1", "configmaps"),
        WatchEvent::InitDone,
    ));
    h.flush_and_push();
    assert!(h.files.contains_key("v1/configmaps/team-a/app.yaml"));
    assert!(h.outputs.iter().any(|o| matches!(o,
        Output::Refused { subject, reason }
            if subject == "v1/secrets/team-a/db" && reason.contains("never written unencrypted"))));
    // Neither rewritten (in plaintext or redacted) nor deleted as an orphan.
    assert_eq!(h.files["v1/secrets/team-a/db.yaml"], kept);
    let text = String::from_utf8_lossy(&kept);
    assert!(
        !text.contains("czNjcmV0") && !text.contains("<redacted>"),
        "{text}"
    );
}

#[test]
fn without_its_fingerprint_key_the_operator_writes_no_sealed_file() {
    let mut h = Harness::with_repo(
        CoreConfig::default(),
        sealed_repo(&[ALICE]),
        &[("", "v1", "secrets")],
        "",
    );
    relist(&mut h, &[]);
    h.answer_all();
    let enc = condition(&h, "Encryption");
    assert!(
        !enc.status && enc.message.contains("fingerprint key"),
        "{enc:?}"
    );
    apply(&mut h, secret("aHVudGVyMg==", "1"));
    assert!(h.flush_and_push().is_empty());
    assert!(h.files.is_empty());
}

#[test]
fn further_resources_are_sealed_when_named_and_a_bad_entry_invalidates_the_spec() {
    let spec = repo(json!({"encryption": {"sops": {"ageRecipients": [ALICE],
        "resources": [{"resource": "configmaps"}]}}}));
    let mut h = Harness::with_repo(config(), spec, &[("", "v1", "configmaps")], "");
    h.seed_empty();
    h.input(Input::Watch(
        gvr("", "v1", "configmaps"),
        WatchEvent::Apply(
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "app", "namespace": "team-a"}, "data": {"token": "t0k3n"}})
            .into(),
        ),
    ));
    let pushed = h.flush_and_push();
    assert!(pushed[0].writes[0].1.as_ref().unwrap().sealed().is_some());
    let file = String::from_utf8_lossy(&h.files["v1/configmaps/team-a/app.yaml"]).to_string();
    assert!(!file.contains("t0k3n"), "{file}");

    let bad = repo(json!({"encryption": {"sops": {"ageRecipients": [ALICE],
        "resources": [{"resource": "configmaps/*"}]}}}));
    h.input(Input::GitRepoConfig(
        repo_name(),
        Some(serde_json::from_value(bad).unwrap()),
    ));
    let ready = condition(&h, "Ready");
    assert!(!ready.status);
    assert_eq!(ready.reason, "InvalidEncryption");
}

#[test]
fn the_signing_key_shows_in_the_status_and_one_that_cannot_be_used_stops_the_repository() {
    let spec = repo(json!({"signing": {"secretRef": {"name": "signer"}}}));
    let mut h = Harness::with_repo(config(), spec, &[("", "v1", "configmaps")], "");
    assert_eq!(condition(&h, "Signing").reason, "SigningKeyPending");
    h.input(Input::Signing(
        repo_name(),
        SigningVerdict::Usable {
            public_key: "ssh-ed25519 AAAAC3Nza signer@test".into(),
            fingerprint: "SHA256:abc".into(),
        },
    ));
    let signing = condition(&h, "Signing");
    assert!(signing.status);
    assert!(
        signing
            .message
            .contains("ssh-ed25519 AAAAC3Nza signer@test"),
        "{signing:?}"
    );
    h.seed_empty();
    h.input(Input::Watch(
        gvr("", "v1", "configmaps"),
        WatchEvent::Apply(
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "app", "namespace": "team-a"}})
            .into(),
        ),
    ));
    h.advance(60_000);
    let ops = h.take_git_ops();
    assert!(!ops.is_empty());
    assert!(ops
        .iter()
        .all(|op| op.signing_secret.as_deref() == Some("signer")));
    h.input(Input::Signing(
        repo_name(),
        SigningVerdict::Invalid("the key is of type ssh-rsa".into()),
    ));
    let ready = condition(&h, "Ready");
    assert!(!ready.status);
    assert_eq!(ready.reason, "SigningKeyInvalid");
    assert!(ready.message.contains("ssh-rsa"), "{ready:?}");
}

#[test]
fn a_seal_key_is_recorded_as_hex_and_never_printed() {
    let c = config();
    let text = serde_json::to_string(&c).unwrap();
    assert!(text.contains(&"2a".repeat(32)), "{text}");
    let back: CoreConfig = serde_json::from_str(&text).unwrap();
    assert_eq!(back.seal_key, c.seal_key);
    assert!(!format!("{c:?}").contains("42, 42"));
    let _ = Core::new(back);
}
