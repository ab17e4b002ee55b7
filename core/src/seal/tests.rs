use super::*;
use serde_json::json;

const RECIPIENT: &str = "age16tjsgvucfgtk0wxch0cncf09m83chnnl455599azkkxsraucu4sqle5wvm";

/// A cipher that writes what it was given, readable: the tests see each value's additional data
/// and type, and that the plaintext is not what lands.
#[derive(Default)]
struct Labels {
    calls: Vec<(String, String, String)>,
}

impl SopsCipher for Labels {
    fn encrypt(&mut self, plaintext: &[u8], aad: &str, kind: &str) -> Result<String, String> {
        let text = String::from_utf8_lossy(plaintext).to_string();
        self.calls.push((text, aad.into(), kind.into()));
        Ok(format!("ENC[TEST,n:{},type:{kind}]", self.calls.len()))
    }

    fn wrapped_keys(&mut self, recipients: &[String]) -> Result<Vec<(String, String)>, String> {
        Ok(recipients
            .iter()
            .map(|r| (r.clone(), "wrapped".to_string()))
            .collect())
    }
}

fn sealing() -> Arc<Sealing> {
    Arc::new(Sealing {
        recipients: vec![RECIPIENT.into()],
        extra_resources: vec![],
    })
}

fn secret(password: &str) -> RawObject {
    RawObject::from(json!({
        "apiVersion": "v1", "kind": "Secret", "type": "example.com/db", "immutable": false,
        "metadata": {"name": "db", "namespace": "shop", "uid": "u-1", "resourceVersion": "7",
                     "labels": {"app": "db", "data": "labels-named-data-are-sealed-too"}},
        "data": {"password": password, "empty": ""},
        "stringData": {"user": "alice"},
    }))
}

fn sealed(password: &str) -> SealedFile {
    SealedFile::new(
        secret(password),
        TypeRules::Secret,
        &SealKey([7; 32]),
        sealing(),
    )
    .unwrap()
}

#[test]
fn values_under_data_and_string_data_are_encrypted_with_their_path_as_additional_data() {
    let mut c = Labels::default();
    let file = sealed("aHVudGVyMg==")
        .seal("2026-12-07T06:46:12Z", &mut c)
        .unwrap();
    let text = String::from_utf8(file).unwrap();
    assert!(!text.contains("aHVudGVyMg=="), "{text}");
    assert!(!text.contains("alice"), "{text}");
    let aads: Vec<&str> = c.calls.iter().map(|(_, aad, _)| aad.as_str()).collect();
    // In the file's order; the empty value is left empty, as SOPS does; the MAC goes last with
    // the timestamp as its additional data.
    assert_eq!(
        aads,
        [
            "metadata:labels:data:",
            "data:password:",
            "stringData:user:",
            "2026-12-07T06:46:12Z"
        ]
    );
    assert!(text.contains("  empty: \"\"\n"), "{text}");
    // The rest stays readable, sanitized as any file is.
    assert!(text.contains("  name: db\n"), "{text}");
    assert!(text.contains("type: example.com/db\n"), "{text}");
    assert!(!text.contains("resourceVersion"), "{text}");
    assert!(
        text.contains(&format!("    recipient: {RECIPIENT}\n")),
        "{text}"
    );
    assert!(
        text.contains("  encrypted_regex: \"^(data|stringData)$\"\n"),
        "{text}"
    );
}

#[test]
fn the_mac_is_the_upper_case_sha512_of_every_value_in_file_order_as_sops_spells_them() {
    let mut c = Labels::default();
    sealed("cw==").seal("2026-12-07T06:46:12Z", &mut c).unwrap();
    // apiVersion, kind, metadata (labels, name, namespace), then the rest sorted: data (empty,
    // password), immutable (Go's Python-style "False"), stringData, type.
    let leaves = [
        "v1",
        "Secret",
        "db",
        "labels-named-data-are-sealed-too",
        "db",
        "shop",
        "",
        "cw==",
        "False",
        "alice",
        "example.com/db",
    ];
    let mut h = Sha512::new();
    for l in leaves {
        h.update(l.as_bytes());
    }
    let want: String = h.finalize().iter().map(|b| format!("{b:02X}")).collect();
    let (mac, _, kind) = c.calls.last().unwrap();
    assert_eq!(mac, &want);
    assert_eq!(kind, "str");
}

#[test]
fn the_listed_id_comes_back_from_the_file_whatever_the_encryption() {
    let s = sealed("cw==");
    let a = s
        .seal("2026-12-07T06:46:12Z", &mut Labels::default())
        .unwrap();
    assert_eq!(listed_id(&a), Some(s.listed_id()));
    assert_eq!(listed_id(b"apiVersion: v1\nkind: Secret\n"), None);
    // A look-alike outside the `sops` block is not ours.
    let fake = format!(
        "metadata:\n  annotations:\n    x: \"\\n  {FINGERPRINT_FIELD}: hmac-sha256:{}\"\n",
        "ab".repeat(32)
    );
    assert_eq!(listed_id(fake.as_bytes()), None);
}

#[test]
fn the_fingerprint_follows_the_plaintext_and_the_recipients_and_nothing_else() {
    let key = SealKey([7; 32]);
    let a = sealed("cw==");
    assert_eq!(a.fingerprint, sealed("cw==").fingerprint);
    assert_ne!(a.fingerprint, sealed("dA==").fingerprint);
    // Server-set fields sanitization removes do not count.
    let mut v = secret("cw==").to_value().unwrap();
    v["metadata"]["resourceVersion"] = json!("8");
    let same = SealedFile::new(RawObject::from(v), TypeRules::Secret, &key, sealing()).unwrap();
    assert_eq!(a.fingerprint, same.fingerprint);
    let more = Arc::new(Sealing {
        recipients: vec![RECIPIENT.into(), "age1other".into()],
        extra_resources: vec![],
    });
    let other = SealedFile::new(secret("cw=="), TypeRules::Secret, &key, more).unwrap();
    assert_ne!(a.fingerprint, other.fingerprint);
    let other_key = SealedFile::new(
        secret("cw=="),
        TypeRules::Secret,
        &SealKey([8; 32]),
        sealing(),
    );
    assert_ne!(a.fingerprint, other_key.unwrap().fingerprint);
    // Debug output never carries a value.
    assert!(!format!("{a:?}").contains("cw=="));
    assert_eq!(format!("{key:?}"), "SealKey(..)");
}

#[test]
fn numbers_and_booleans_under_data_keep_their_type() {
    let obj = RawObject::from(json!({"apiVersion": "example.com/v1", "kind": "Token",
        "metadata": {"name": "t"}, "data": {"n": 5, "f": 1.5, "b": true}}));
    let s = SealedFile::new(obj, TypeRules::Plain, &SealKey([1; 32]), sealing()).unwrap();
    let mut c = Labels::default();
    s.seal("2026-12-07T06:46:12Z", &mut c).unwrap();
    let typed: Vec<(&str, &str)> = c.calls[..3]
        .iter()
        .map(|(p, _, k)| (p.as_str(), k.as_str()))
        .collect();
    assert_eq!(typed, [("True", "bool"), ("1.5", "float"), ("5", "int")]);
}

#[test]
fn a_top_level_sops_field_is_refused() {
    let obj = RawObject::from(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "t"}, "sops": {"x": 1}}));
    let s = SealedFile::new(obj, TypeRules::Secret, &SealKey([1; 32]), sealing()).unwrap();
    let err = s
        .seal("2026-12-07T06:46:12Z", &mut Labels::default())
        .unwrap_err();
    assert!(err.contains("sops"), "{err}");
}

#[test]
fn age_recipients_are_checked_for_prefix_alphabet_and_checksum() {
    let key = parse_age_recipient(RECIPIENT).unwrap();
    assert_eq!(key.len(), 32);
    let mut wrong = RECIPIENT.to_string();
    wrong.pop();
    wrong.push('q');
    assert!(parse_age_recipient(&wrong)
        .unwrap_err()
        .contains("checksum"));
    assert!(parse_age_recipient(&RECIPIENT.replace("age16t", "age16T"))
        .unwrap_err()
        .contains("lower case"));
    assert!(parse_age_recipient("ssh-ed25519 AAAA")
        .unwrap_err()
        .contains("age1"));
    assert!(parse_age_recipient("age1b").is_err());
    assert!(parse_age_recipient("").is_err());
}

#[test]
fn extra_resources_are_sealed_beside_core_secrets() {
    let s = Sealing {
        recipients: vec![],
        extra_resources: vec![("".into(), "configmaps".into())],
    };
    assert!(s.seals("", "secrets"));
    assert!(s.seals("", "configmaps"));
    assert!(!s.seals("example.com", "secrets"));
}
