//! Sealed files: objects a GitRepoConfig with `spec.encryption.sops` has written as SOPS YAML,
//! their `data`/`stringData` values encrypted for age recipients, everything else readable.
//!
//! The core decides what is sealed and whether a sealed file changed; encrypting needs entropy, so
//! it happens in the executor as the blob is written, through a [`SopsCipher`] (AES-256-GCM and
//! age in the runtime, a reversible stand-in in the simulator). Everything else of the format is
//! here, once: which values are encrypted and with what additional data, the MAC over every value,
//! and the `sops` metadata, so that the real `sops` decrypts what either executor writes.
//!
//! The operator cannot decrypt its own files, and every encryption is new: a file's bytes say
//! nothing of whether its object changed. So a sealed file carries a keyed fingerprint of its
//! plaintext (HMAC-SHA256 under the operator's [`SealKey`], never an unkeyed hash, which would let
//! anyone reading the repository test guesses of a low-entropy value). The core knows a sealed
//! file by the fingerprint ([`SealedFile::listed_id`]), and executors report that id for it in
//! listings ([`listed_id`]): an unchanged Secret makes no commit, whatever restarts or relists.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256, Sha512};

use crate::canonical::LEADING_KEYS;
use crate::json::{JsonError, RawObject};
use crate::sanitize::TypeRules;

/// Keys whose values are encrypted, wherever they are in a file's path (SOPS's `encrypted_regex`
/// matches every key of a value's path).
pub const ENCRYPTED_KEYS: [&str; 2] = ["data", "stringData"];
/// The `encrypted_regex` a sealed file records: [`ENCRYPTED_KEYS`] as SOPS reads it.
pub const ENCRYPTED_REGEX: &str = "^(data|stringData)$";
/// The SOPS version a sealed file records (the one the format was checked against).
pub const SOPS_VERSION: &str = "3.11.0";
/// The key of the fingerprint in a sealed file's `sops` block (SOPS ignores keys it does not know,
/// and drops the block when it decrypts).
pub const FINGERPRINT_FIELD: &str = "gitops_reverser_fingerprint";
const FINGERPRINT_PREFIX: &str = "hmac-sha256:";

/// The operator's fingerprint key: 32 random bytes, kept in a Secret in its namespace. It never
/// shows in `Debug` output; it is recorded as hex (recordings hold Secrets' data anyway).
#[derive(Clone, PartialEq, Eq)]
pub struct SealKey(pub [u8; 32]);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

impl Serialize for SealKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex(&self.0))
    }
}

impl<'de> Deserialize<'de> for SealKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        unhex32(&text)
            .map(SealKey)
            .ok_or_else(|| serde::de::Error::custom("a seal key is 64 hex digits"))
    }
}

/// How a repository seals files: its age recipients, validated, sorted and without duplicates,
/// and the resources sealed beyond core Secrets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sealing {
    /// `age1…` X25519 recipients.
    pub recipients: Vec<String>,
    /// Further resources whose files are sealed, as `(group, resource)`.
    pub extra_resources: Vec<(String, String)>,
}

impl Sealing {
    /// Whether objects of `gvr`'s resource are sealed: core Secrets always, and the extra ones.
    pub fn seals(&self, group: &str, resource: &str) -> bool {
        (group.is_empty() && resource == "secrets")
            || self
                .extra_resources
                .iter()
                .any(|(g, r)| g == group && r == resource)
    }
}

/// Encrypts for one sealed file: one data key, fresh for the file, behind every method.
pub trait SopsCipher {
    /// One value's `ENC[AES256_GCM,data:…,iv:…,tag:…,type:{kind}]` text: `plaintext` encrypted
    /// with the file's data key, `aad` as the additional data.
    fn encrypt(&mut self, plaintext: &[u8], aad: &str, kind: &str) -> Result<String, String>;
    /// The data key wrapped for each recipient: `(recipient, armored age file)`.
    fn wrapped_keys(&mut self, recipients: &[String]) -> Result<Vec<(String, String)>, String>;
}

/// An object's file that the executor encrypts as it writes it. Its `Debug` shows the
/// fingerprint only.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedFile {
    /// The object's JSON text.
    pub object: RawObject,
    /// The sanitization rules of its type, without redaction.
    pub rules: TypeRules,
    /// HMAC-SHA256 of the recipients and the plaintext file under the operator's key.
    pub fingerprint: [u8; 32],
    /// Whom it is encrypted for.
    pub sealing: Arc<Sealing>,
}

impl std::fmt::Debug for SealedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealed({})", hex(&self.fingerprint))
    }
}

impl SealedFile {
    /// The sealed file of an object the core has read (so it renders). `rules` are its type's;
    /// a Secret's redaction is not applied (its values are what is encrypted).
    pub fn new(
        object: RawObject,
        rules: TypeRules,
        key: &SealKey,
        sealing: Arc<Sealing>,
    ) -> Result<Self, JsonError> {
        let rules = match rules {
            TypeRules::Secret => TypeRules::SealedSecret,
            other => other,
        };
        let plaintext = crate::yaml::render_object(object.as_bytes(), rules)?;
        let fingerprint = fingerprint(key, &sealing, &plaintext);
        Ok(Self {
            object,
            rules,
            fingerprint,
            sealing,
        })
    }

    /// The file as a replay shows it, with no executor to encrypt it: `data`/`stringData` values
    /// redacted, as a repository without `spec.encryption` gets a Secret.
    pub fn redacted_view(&self) -> Vec<u8> {
        crate::yaml::render_object(self.object.as_bytes(), TypeRules::Secret)
            .expect("the core read this object before it sealed it")
    }

    /// The id the core and the executors know this file by, in place of its blob id (which is
    /// new on every encryption): the fingerprint's first 20 bytes.
    pub fn listed_id(&self) -> [u8; 20] {
        self.fingerprint[..20].try_into().expect("32 bytes")
    }

    /// The file's bytes: SOPS YAML, `last_modified` (RFC 3339, seconds, UTC) its timestamp.
    pub fn seal(
        &self,
        last_modified: &str,
        cipher: &mut dyn SopsCipher,
    ) -> Result<Vec<u8>, String> {
        let canonical = crate::canonical::sanitized_bytes(self.object.as_bytes(), self.rules)
            .map_err(|e| format!("unreadable object: {e}"))?;
        let mut doc: Value =
            serde_json::from_slice(&canonical).map_err(|e| format!("unreadable object: {e}"))?;
        let Some(top) = doc.as_object_mut() else {
            return Err("a sealed object is a JSON object".into());
        };
        if top.contains_key("sops") {
            return Err("the object has a top-level `sops` field, which SOPS reserves".into());
        }
        // Leaves in the order the file shows them (SOPS hashes them in that order).
        let mut order: Vec<String> = LEADING_KEYS
            .iter()
            .filter(|k| top.contains_key(**k))
            .map(|k| k.to_string())
            .collect();
        order.extend(
            top.keys()
                .filter(|k| !LEADING_KEYS.contains(&k.as_str()))
                .cloned(),
        );
        let mut mac = Sha512::new();
        let mut path = Vec::new();
        for key in order {
            let value = top.get_mut(&key).expect("listed above");
            path.push(key);
            walk(value, &mut path, &mut mac, cipher)?;
            path.pop();
        }
        let mac_hex: String = mac.finalize().iter().map(|b| format!("{b:02X}")).collect();
        let mac = cipher.encrypt(mac_hex.as_bytes(), last_modified, "str")?;
        let age: Vec<Value> = cipher
            .wrapped_keys(&self.sealing.recipients)?
            .into_iter()
            .map(|(recipient, enc)| serde_json::json!({"recipient": recipient, "enc": enc}))
            .collect();
        top.insert(
            "sops".into(),
            serde_json::json!({
                "age": age,
                "lastmodified": last_modified,
                "mac": mac,
                "encrypted_regex": ENCRYPTED_REGEX,
                "version": SOPS_VERSION,
                FINGERPRINT_FIELD: format!("{FINGERPRINT_PREFIX}{}", hex(&self.fingerprint)),
            }),
        );
        let json = serde_json::to_vec(&doc).expect("a JSON value serializes");
        crate::yaml::render_object(&json, TypeRules::Plain).map_err(|e| e.to_string())
    }
}

/// Adds every leaf under `value` to the MAC, as SOPS's `ToBytes` spells it, and encrypts those with
/// an encrypted key on their path. Nulls are neither (SOPS skips them).
fn walk(
    value: &mut Value,
    path: &mut Vec<String>,
    mac: &mut Sha512,
    cipher: &mut dyn SopsCipher,
) -> Result<(), String> {
    let (bytes, kind) = match value {
        Value::Null => return Ok(()),
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                path.push(k.clone());
                walk(v, path, mac, cipher)?;
                path.pop();
            }
            return Ok(());
        }
        Value::Array(items) => {
            for v in items {
                walk(v, path, mac, cipher)?;
            }
            return Ok(());
        }
        Value::String(s) => (s.as_bytes().to_vec(), "str"),
        Value::Bool(b) => (
            if *b { "True" } else { "False" }.as_bytes().to_vec(),
            "bool",
        ),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => (i.to_string().into_bytes(), "int"),
            (_, Some(u), _) => (u.to_string().into_bytes(), "int"),
            // Go's FormatFloat(f, 'f', -1, 64): the shortest digits that read back, no exponent,
            // which is what Rust's `Display` prints.
            (_, _, Some(f)) => (format!("{f}").into_bytes(), "float"),
            _ => return Err(format!("the number at {} cannot be sealed", path.join("."))),
        },
    };
    mac.update(&bytes);
    if path.iter().any(|k| ENCRYPTED_KEYS.contains(&k.as_str())) {
        // SOPS leaves an empty string empty.
        let sealed = if bytes.is_empty() {
            String::new()
        } else {
            let mut aad = path.join(":");
            aad.push(':');
            cipher.encrypt(&bytes, &aad, kind)?
        };
        *value = Value::String(sealed);
    }
    Ok(())
}

/// HMAC-SHA256 under `key` of the recipients and the plaintext file: a new recipient set makes
/// every file differ, so that the next resync encrypts every file for it.
fn fingerprint(key: &SealKey, sealing: &Sealing, plaintext: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key.0).expect("any key length");
    mac.update(b"sops-age\0");
    for r in &sealing.recipients {
        mac.update(r.as_bytes());
        mac.update(b"\n");
    }
    mac.update(b"\0");
    mac.update(plaintext);
    mac.finalize().into_bytes().into()
}

/// The id of a listed file that is a sealed file of ours: its fingerprint's first 20 bytes, read
/// from the `sops` block; `None` for any other file.
pub fn listed_id(file: &[u8]) -> Option<[u8; 20]> {
    let text = std::str::from_utf8(file).ok()?;
    let block = text.rfind("\nsops:\n").map(|i| &text[i..])?;
    let line = format!("\n  {FINGERPRINT_FIELD}: ");
    let at = block.find(&line)? + line.len();
    let rest = block[at..].trim_start_matches(['"', '\'']);
    let hex_text = rest.strip_prefix(FINGERPRINT_PREFIX)?.get(..64)?;
    let full = unhex32(hex_text)?;
    full[..20].try_into().ok()
}

/// Decodes an age X25519 recipient (`age1…`, Bech32) into its public key.
pub fn parse_age_recipient(text: &str) -> Result<[u8; 32], String> {
    let bad = |why: &str| format!("{text:?} is not an age recipient: {why}");
    if text.len() > 90 {
        return Err(bad("too long"));
    }
    let Some(data) = text.strip_prefix("age1") else {
        return Err(bad(
            "it does not start with age1 (only age's X25519 recipients are supported)",
        ));
    };
    let hrp = "age";
    if data.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(bad("age recipients are lower case"));
    }
    const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    let values: Vec<u8> = data
        .bytes()
        .map(|c| CHARSET.iter().position(|&x| x == c).map(|p| p as u8))
        .collect::<Option<_>>()
        .ok_or_else(|| bad("a character outside Bech32's alphabet"))?;
    if values.len() < 6 {
        return Err(bad("too short"));
    }
    let mut check: Vec<u8> = hrp.bytes().map(|c| c >> 5).collect();
    check.push(0);
    check.extend(hrp.bytes().map(|c| c & 31));
    check.extend(&values);
    if bech32_polymod(&check) != 1 {
        return Err(bad("its checksum is wrong"));
    }
    // 5-bit groups to bytes, no padding.
    let (mut acc, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for &v in &values[..values.len() - 6] {
        acc = (acc << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    if bits >= 5 || (acc & ((1 << bits) - 1)) != 0 {
        return Err(bad("bad padding"));
    }
    out.try_into().map_err(|_| bad("not a 32-byte key"))
}

fn bech32_polymod(values: &[u8]) -> u32 {
    const GEN: [u32; 5] = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
    let mut chk: u32 = 1;
    for &v in values {
        let top = chk >> 25;
        chk = ((chk & 0x1ffffff) << 5) ^ u32::from(v);
        for (i, g) in GEN.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    chk
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests;
