//! The executor's SOPS cipher: a fresh 256-bit data key per file, each value sealed with
//! AES-256-GCM under a random 32-byte nonce (as SOPS does), and the data key wrapped for every age
//! X25519 recipient as an armored age file (age-encryption.org/v1). The document around it (which
//! values, their additional data, the MAC, the metadata) is the core's
//! ([`gitops_reverser_core::seal`]); the real `sops` decrypts the result (`runtime/tests/sops.rs`).

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::aes::Aes256;
use aes_gcm::AesGcm;
use base64::Engine;
use gitops_reverser_core::seal::{parse_age_recipient, SealedFile, SopsCipher};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{aead, agreement, hkdf, hmac};

/// AES-256-GCM with SOPS's 32-byte nonces.
type SopsGcm = AesGcm<Aes256, U32>;

/// Encrypts one file: holds its data key, made when the cipher is.
pub struct FileCipher {
    rng: SystemRandom,
    data_key: [u8; 32],
}

impl FileCipher {
    /// A cipher with a fresh data key.
    pub fn new() -> Result<FileCipher, String> {
        let rng = SystemRandom::new();
        let mut data_key = [0u8; 32];
        rng.fill(&mut data_key).map_err(|_| no_entropy())?;
        Ok(FileCipher { rng, data_key })
    }
}

fn no_entropy() -> String {
    "the system's random number generator failed".into()
}

impl SopsCipher for FileCipher {
    fn encrypt(&mut self, plaintext: &[u8], aad: &str, kind: &str) -> Result<String, String> {
        let mut iv = [0u8; 32];
        self.rng.fill(&mut iv).map_err(|_| no_entropy())?;
        let cipher = SopsGcm::new_from_slice(&self.data_key).expect("a 32-byte key");
        let mut data = plaintext.to_vec();
        let tag = cipher
            .encrypt_in_place_detached(&iv.into(), aad.as_bytes(), &mut data)
            .map_err(|_| "AES-GCM refused the value".to_string())?;
        let b64 = base64::engine::general_purpose::STANDARD;
        Ok(format!(
            "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{kind}]",
            b64.encode(&data),
            b64.encode(iv),
            b64.encode(tag)
        ))
    }

    fn wrapped_keys(&mut self, recipients: &[String]) -> Result<Vec<(String, String)>, String> {
        recipients
            .iter()
            .map(|r| {
                let key = parse_age_recipient(r)?;
                Ok((r.clone(), age_encrypt(&self.rng, &key, &self.data_key)?))
            })
            .collect()
    }
}

impl Drop for FileCipher {
    fn drop(&mut self) {
        self.data_key = [0; 32];
    }
}

/// A sealed file's bytes, stamped `last_modified` (RFC 3339).
pub fn seal(file: &SealedFile, last_modified: &str) -> Result<Vec<u8>, String> {
    file.seal(last_modified, &mut FileCipher::new()?)
}

/// HKDF-SHA256 of `ikm` with `salt` and `info`, 32 bytes.
fn hkdf32(salt: &[u8], ikm: &[u8], info: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    hkdf::Salt::new(hkdf::HKDF_SHA256, salt)
        .extract(ikm)
        .expand(&[info], hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut out))
        .expect("32 bytes is a valid HKDF-SHA256 length");
    out
}

/// ChaCha20-Poly1305 of `data` in place, tag appended.
fn chacha_seal(key: &[u8; 32], nonce: [u8; 12], data: &mut Vec<u8>) {
    let key = aead::LessSafeKey::new(
        aead::UnboundKey::new(&aead::CHACHA20_POLY1305, key).expect("a 32-byte key"),
    );
    key.seal_in_place_append_tag(
        aead::Nonce::assume_unique_for_key(nonce),
        aead::Aad::empty(),
        data,
    )
    .expect("a short message seals");
}

fn b64_raw(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
}

/// `plaintext` as an armored age file for one X25519 recipient (age-encryption.org/v1): a random
/// file key wrapped through an ephemeral X25519 agreement, the header's MAC, and the payload as
/// one STREAM chunk.
fn age_encrypt(
    rng: &SystemRandom,
    recipient: &[u8; 32],
    plaintext: &[u8],
) -> Result<String, String> {
    let mut file_key = [0u8; 16];
    rng.fill(&mut file_key).map_err(|_| no_entropy())?;
    let ephemeral = agreement::EphemeralPrivateKey::generate(&agreement::X25519, rng)
        .map_err(|_| no_entropy())?;
    let share = ephemeral.compute_public_key().map_err(|_| no_entropy())?;
    let share = share.as_ref().to_vec();
    let shared = agreement::agree_ephemeral(
        ephemeral,
        &agreement::UnparsedPublicKey::new(&agreement::X25519, recipient),
        |secret| secret.to_vec(),
    )
    .map_err(|_| "the age recipient is not a usable X25519 key".to_string())?;
    let mut salt = share.clone();
    salt.extend_from_slice(recipient);
    let wrap_key = hkdf32(&salt, &shared, b"age-encryption.org/v1/X25519");
    let mut body = file_key.to_vec();
    chacha_seal(&wrap_key, [0; 12], &mut body);
    // The wrapped key is 32 bytes: one body line of 43 characters (lines hold at most 64).
    let mut header = format!(
        "age-encryption.org/v1\n-> X25519 {}\n{}\n---",
        b64_raw(&share),
        b64_raw(&body)
    );
    let mac_key = hkdf32(&[], &file_key, b"header");
    let mac = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &mac_key),
        header.as_bytes(),
    );
    header.push(' ');
    header.push_str(&b64_raw(mac.as_ref()));
    header.push('\n');
    let mut nonce = [0u8; 16];
    rng.fill(&mut nonce).map_err(|_| no_entropy())?;
    let payload_key = hkdf32(&nonce, &file_key, b"payload");
    let mut chunk = plaintext.to_vec();
    // STREAM: an 11-byte counter (0) and the last-chunk flag.
    let mut chunk_nonce = [0u8; 12];
    chunk_nonce[11] = 1;
    chacha_seal(&payload_key, chunk_nonce, &mut chunk);
    let mut file = header.into_bytes();
    file.extend_from_slice(&nonce);
    file.extend_from_slice(&chunk);
    let encoded = base64::engine::general_purpose::STANDARD.encode(&file);
    let mut armored = String::from("-----BEGIN AGE ENCRYPTED FILE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        armored.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        armored.push('\n');
    }
    armored.push_str("-----END AGE ENCRYPTED FILE-----\n");
    Ok(armored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_gets_its_own_nonce_and_the_format_sops_parses() {
        let mut c = FileCipher::new().unwrap();
        let a = c.encrypt(b"hunter2", "data:password:", "str").unwrap();
        let b = c.encrypt(b"hunter2", "data:password:", "str").unwrap();
        assert_ne!(a, b);
        let re = regex::Regex::new(
            r"^ENC\[AES256_GCM,data:([A-Za-z0-9+/=]+),iv:([A-Za-z0-9+/=]{44}),tag:([A-Za-z0-9+/=]{24}),type:str\]$",
        )
        .unwrap();
        assert!(re.is_match(&a), "{a}");
    }

    #[test]
    fn an_age_file_is_armored_with_one_x25519_stanza() {
        let key =
            parse_age_recipient("age16tjsgvucfgtk0wxch0cncf09m83chnnl455599azkkxsraucu4sqle5wvm")
                .unwrap();
        let armored = age_encrypt(&SystemRandom::new(), &key, &[9; 32]).unwrap();
        assert!(armored.starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n"));
        assert!(armored.ends_with("\n-----END AGE ENCRYPTED FILE-----\n"));
        let body: String = armored
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap();
        let text = String::from_utf8_lossy(&raw);
        assert!(
            text.starts_with("age-encryption.org/v1\n-> X25519 "),
            "{text}"
        );
        assert!(text.contains("\n--- "), "{text}");
    }
}
