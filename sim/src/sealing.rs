//! The simulated executor's stand-in for SOPS encryption: deterministic (a per-write counter is
//! its nonce, so a seed replays exactly) and reversible (the checkers read the plaintext back),
//! yet new bytes on every write as real encryption is, so that a rewrite of an unchanged Secret
//! shows as a changed file. The document around the values is the core's, as in the runtime.
//!
//! A value is XORed with a keystream of its nonce and additional data and written as hex: no
//! plaintext and no base64 of a value can appear in a sealed file (the Secret checker looks).

use std::sync::Arc;

use gitops_reverser_core::seal::{SealedFile, SopsCipher};
use serde_json::Value;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// What a sealed file's timestamp reads in the simulation.
const STAMP: &str = "2026-01-01T00:00:00Z";

struct StandIn {
    nonce: u64,
}

fn keystream(nonce: u64, aad: &str, len: usize) -> Vec<u8> {
    (0..len.div_ceil(8))
        .flat_map(|block| {
            xxh3_64_with_seed(aad.as_bytes(), nonce ^ (block as u64).rotate_left(32)).to_le_bytes()
        })
        .take(len)
        .collect()
}

impl SopsCipher for StandIn {
    fn encrypt(&mut self, plaintext: &[u8], aad: &str, kind: &str) -> Result<String, String> {
        let hex: String = plaintext
            .iter()
            .zip(keystream(self.nonce, aad, plaintext.len()))
            .map(|(p, k)| format!("{:02x}", p ^ k))
            .collect();
        Ok(format!(
            "ENC[SIM,data:{hex},iv:{:x},type:{kind}]",
            self.nonce
        ))
    }

    fn wrapped_keys(&mut self, recipients: &[String]) -> Result<Vec<(String, String)>, String> {
        Ok(recipients
            .iter()
            .map(|r| (r.clone(), format!("sim-data-key-{:x}", self.nonce)))
            .collect())
    }
}

/// The bytes a sealed file is written as, `nonce` this write's own.
pub fn seal(file: &SealedFile, nonce: u64) -> Arc<[u8]> {
    file.seal(STAMP, &mut StandIn { nonce })
        .expect("the stand-in cannot fail, and the core read the object")
        .into()
}

/// A sealed file read back: its document without the `sops` block, every value decrypted, and
/// its recipients; `None` for a file that is not a stand-in sealed one.
pub fn unseal(bytes: &[u8]) -> Option<(Value, Vec<String>)> {
    let mut doc: Value = serde_yaml::from_slice(bytes).ok()?;
    let sops = doc.as_object_mut()?.remove("sops")?;
    let recipients = sops
        .get("age")?
        .as_array()?
        .iter()
        .filter_map(|a| a.get("recipient")?.as_str().map(String::from))
        .collect();
    let mut path = Vec::new();
    decrypt(&mut doc, &mut path)?;
    Some((doc, recipients))
}

fn decrypt(v: &mut Value, path: &mut Vec<String>) -> Option<()> {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                path.push(k.clone());
                decrypt(child, path)?;
                path.pop();
            }
        }
        Value::Array(items) => {
            for child in items {
                decrypt(child, path)?;
            }
        }
        Value::String(s) if s.starts_with("ENC[SIM,data:") => {
            let body = s.strip_prefix("ENC[SIM,data:")?.strip_suffix(']')?;
            let mut parts = body.split(',');
            let hex = parts.next()?;
            let nonce = u64::from_str_radix(parts.next()?.strip_prefix("iv:")?, 16).ok()?;
            let kind = parts.next()?.strip_prefix("type:")?;
            let cipher: Vec<u8> = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
                .collect::<Option<_>>()?;
            let aad = format!("{}:", path.join(":"));
            let plain: Vec<u8> = cipher
                .iter()
                .zip(keystream(nonce, &aad, cipher.len()))
                .map(|(c, k)| c ^ k)
                .collect();
            let text = String::from_utf8(plain).ok()?;
            *v = match kind {
                "str" => Value::String(text),
                "bool" => Value::Bool(text == "True"),
                _ => serde_json::from_str(&text).ok()?,
            };
        }
        _ => {}
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitops_reverser_core::seal::{SealKey, Sealing};
    use gitops_reverser_core::{RawObject, TypeRules};
    use serde_json::json;

    #[test]
    fn a_sealed_file_reads_back_to_its_values_and_differs_per_write() {
        let obj = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "team-a"},
            "data": {"password": "aHVudGVyMi1xN3g="}, "stringData": {"k": "hunter2-q7x"}});
        let sealing = Arc::new(Sealing {
            recipients: vec!["age1sim".into()],
            extra_resources: vec![],
        });
        let file = SealedFile::new(
            RawObject::from(obj.clone()),
            TypeRules::Secret,
            &SealKey([1; 32]),
            sealing,
        )
        .unwrap();
        let (a, b) = (seal(&file, 1), seal(&file, 2));
        assert_ne!(a, b);
        let text = String::from_utf8_lossy(&a);
        assert!(
            !text.contains("aHVudGVyMi1xN3g=") && !text.contains("hunter2"),
            "{text}"
        );
        let (doc, recipients) = unseal(&a).unwrap();
        assert_eq!(doc, obj);
        assert_eq!(recipients, ["age1sim"]);
        assert_eq!(unseal(&b).unwrap().0, obj);
        assert!(unseal(b"apiVersion: v1\n").is_none());
    }
}
