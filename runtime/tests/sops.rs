//! Sealed files against the real tools: `sops` 3.x decrypts what the executor's cipher writes,
//! with an identity made by `age-keygen`, and gives back the object's values exactly.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use gitops_reverser_core::seal::{listed_id, SealKey, SealedFile, Sealing};
use gitops_reverser_core::RawObject;
use gitops_reverser_core::TypeRules;
use gitops_reverser_runtime::git::sops::seal;
use serde_json::json;

/// A new age identity in `dir`: (key file, recipient).
fn identity(dir: &Path, name: &str) -> (std::path::PathBuf, String) {
    let keygen = support::require("age-keygen", &[]);
    let file = dir.join(name);
    let out = Command::new(keygen).arg("-o").arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .expect("age-keygen writes the public key")
        .to_string();
    (file, recipient)
}

/// `sops --decrypt` of `file` with the identity in `key`: stdout, or the error.
fn sops_decrypt(file: &Path, key: &Path) -> Result<String, String> {
    let sops = support::require("sops", &[]);
    let out = Command::new(sops)
        .args(["--decrypt", "--input-type", "yaml", "--output-type", "yaml"])
        .arg(file)
        .env("SOPS_AGE_KEY_FILE", key)
        .env_remove("SOPS_AGE_KEY")
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

fn secret() -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/basic-auth",
        "immutable": false,
        "metadata": {"name": "db", "namespace": "shop", "uid": "u", "resourceVersion": "9",
            "labels": {"app": "db", "tier": "3"},
            "annotations": {"note": "two\nlines", "port": "5432"}},
        "data": {"password": "aHVudGVyMg==", "username": "YWxpY2U=", "empty": "",
                 "cert.pem": "LS0tLS1CRUdJTgotLS0tLUVORAo="},
        "stringData": {"dsn": "postgres://alice:hunter2@db:5432/shop?sslmode=require"}
    })
}

#[test]
fn sops_decrypts_a_sealed_secret_to_its_values_for_every_recipient() {
    let dir = tempfile::tempdir().unwrap();
    let (key_a, rec_a) = identity(dir.path(), "a.txt");
    let (key_b, rec_b) = identity(dir.path(), "b.txt");
    let (key_c, _) = identity(dir.path(), "c.txt");
    let mut recipients = vec![rec_a, rec_b];
    recipients.sort();
    let sealing = Arc::new(Sealing {
        recipients,
        extra_resources: vec![],
    });
    let file = SealedFile::new(
        RawObject::from(secret()),
        TypeRules::Secret,
        &SealKey([3; 32]),
        sealing,
    )
    .unwrap();
    let bytes = seal(&file, "2026-12-07T06:46:12Z").unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    for plain in ["aHVudGVyMg==", "hunter2", "YWxpY2U=", "postgres://"] {
        assert!(!text.contains(plain), "{plain} in\n{text}");
    }
    assert_eq!(listed_id(&bytes), Some(file.listed_id()));
    let path = dir.path().join("db.yaml");
    std::fs::write(&path, &bytes).unwrap();
    let want: serde_yaml::Value = serde_yaml::from_slice(
        &gitops_reverser_core::render_object(
            RawObject::from(secret()).as_bytes(),
            TypeRules::Plain,
        )
        .unwrap(),
    )
    .unwrap();
    for key in [&key_a, &key_b] {
        let plain = sops_decrypt(&path, key).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let got: serde_yaml::Value = serde_yaml::from_str(&plain).unwrap();
        assert_eq!(got, want, "decrypted:\n{plain}\nsealed:\n{text}");
    }
    let refused = sops_decrypt(&path, &key_c).unwrap_err();
    assert!(refused.to_lowercase().contains("age"), "{refused}");
    // A value changed by hand fails SOPS's MAC.
    let tampered = text.replacen("name: db", "name: dc", 1);
    std::fs::write(&path, tampered).unwrap();
    let err = sops_decrypt(&path, &key_a).unwrap_err();
    assert!(err.contains("MAC"), "{err}");
}

#[test]
fn two_encryptions_of_one_secret_differ_but_carry_one_listed_id() {
    let (_, rec) = (
        "",
        "age16tjsgvucfgtk0wxch0cncf09m83chnnl455599azkkxsraucu4sqle5wvm",
    );
    let sealing = Arc::new(Sealing {
        recipients: vec![rec.into()],
        extra_resources: vec![],
    });
    let file = SealedFile::new(
        RawObject::from(secret()),
        TypeRules::Secret,
        &SealKey([3; 32]),
        sealing,
    )
    .unwrap();
    let a = seal(&file, "2026-12-07T06:46:12Z").unwrap();
    let b = seal(&file, "2026-12-07T06:46:12Z").unwrap();
    assert_ne!(a, b);
    assert_eq!(listed_id(&a), listed_id(&b));
}
