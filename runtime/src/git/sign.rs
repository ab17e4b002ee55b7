//! Commit signatures with an SSH key: git's `gpgsig` header in the `sshsig` format (namespace
//! `git`, SHA-512), which `git verify-commit` checks with `gpg.format=ssh` and an allowed-signers
//! file. Keys are OpenSSH private keys without a passphrase, of type `ssh-ed25519` (the type
//! `ssh-keygen` makes by default); Ed25519 and SHA-512 come from ring.

use base64::Engine;
use ring::signature::{Ed25519KeyPair, KeyPair};

/// The key type signing supports.
pub const KEY_TYPE: &str = "ssh-ed25519";
/// The sshsig namespace git signs and verifies commits in.
const NAMESPACE: &str = "git";
/// Base64 columns of an armored signature (as `ssh-keygen -Y sign` writes it).
const ARMOR_COLUMNS: usize = 70;

/// A usable signing key.
pub struct Signer {
    pair: Ed25519KeyPair,
    /// The public key blob (`string "ssh-ed25519" || string key`).
    public_blob: Vec<u8>,
    comment: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.fingerprint())
    }
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Reads SSH wire-format fields.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u32(&mut self) -> Result<u32, String> {
        let (head, rest) = self
            .0
            .split_first_chunk::<4>()
            .ok_or_else(|| "the key ends early".to_string())?;
        self.0 = rest;
        Ok(u32::from_be_bytes(*head))
    }

    fn string(&mut self) -> Result<&'a [u8], String> {
        let len = self.u32()? as usize;
        if self.0.len() < len {
            return Err("the key ends early".into());
        }
        let (s, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(s)
    }
}

impl Signer {
    /// Reads an OpenSSH private key (`-----BEGIN OPENSSH PRIVATE KEY-----`). The errors say what
    /// to change.
    pub fn from_openssh(text: &[u8]) -> Result<Signer, String> {
        let text = std::str::from_utf8(text).map_err(|_| "the key is not text".to_string())?;
        let body: String = text
            .lines()
            .map(str::trim)
            .skip_while(|l| *l != "-----BEGIN OPENSSH PRIVATE KEY-----")
            .skip(1)
            .take_while(|l| *l != "-----END OPENSSH PRIVATE KEY-----")
            .collect();
        if body.is_empty() {
            return Err(
                "not an OpenSSH private key (-----BEGIN OPENSSH PRIVATE KEY-----); make one with ssh-keygen -t ed25519".into(),
            );
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|_| "the key's base64 is damaged".to_string())?;
        let rest = raw
            .strip_prefix(b"openssh-key-v1\0")
            .ok_or_else(|| "not an openssh-key-v1 key".to_string())?;
        let mut r = Reader(rest);
        let cipher = r.string()?;
        let _kdf = r.string()?;
        let _kdf_options = r.string()?;
        if cipher != b"none" {
            return Err(
                "the key is protected by a passphrase; the operator cannot type one: store it without (ssh-keygen -p -N '' -f KEY)".into(),
            );
        }
        if r.u32()? != 1 {
            return Err("the file holds several keys; give the operator one".into());
        }
        let public_blob = r.string()?.to_vec();
        let mut private = Reader(r.string()?);
        if private.u32()? != private.u32()? {
            return Err("the key's check numbers differ: the file is damaged".into());
        }
        let key_type = private.string()?;
        if key_type != KEY_TYPE.as_bytes() {
            return Err(format!(
                "the key is of type {}; commit signing takes {KEY_TYPE} keys (ssh-keygen -t ed25519)",
                String::from_utf8_lossy(key_type)
            ));
        }
        let public = private.string()?;
        let secret = private.string()?;
        let comment = String::from_utf8_lossy(private.string()?).to_string();
        if public.len() != 32 || secret.len() != 64 || &secret[32..] != public {
            return Err("the ed25519 key's fields are damaged".into());
        }
        let pair = Ed25519KeyPair::from_seed_and_public_key(&secret[..32], public)
            .map_err(|_| "the ed25519 key's halves do not belong together".to_string())?;
        let mut expected = Vec::new();
        put_string(&mut expected, KEY_TYPE.as_bytes());
        put_string(&mut expected, pair.public_key().as_ref());
        if expected != public_blob {
            return Err("the key's public part does not match its private part".into());
        }
        Ok(Signer {
            pair,
            public_blob,
            comment,
        })
    }

    /// The public key as an authorized-keys / allowed-signers line: `ssh-ed25519 AAAA… comment`.
    pub fn public_key(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.public_blob);
        match self.comment.is_empty() {
            true => format!("{KEY_TYPE} {b64}"),
            false => format!("{KEY_TYPE} {b64} {}", self.comment),
        }
    }

    /// The key's fingerprint as `ssh-keygen -l` prints it: `SHA256:…`.
    pub fn fingerprint(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.public_blob);
        format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest.as_ref())
        )
    }

    /// An armored sshsig signature of `message` in the `git` namespace.
    pub fn sign(&self, message: &[u8]) -> String {
        let hash = ring::digest::digest(&ring::digest::SHA512, message);
        let mut signed = b"SSHSIG".to_vec();
        put_string(&mut signed, NAMESPACE.as_bytes());
        put_string(&mut signed, b"");
        put_string(&mut signed, b"sha512");
        put_string(&mut signed, hash.as_ref());
        let sig = self.pair.sign(&signed);
        let mut sig_blob = Vec::new();
        put_string(&mut sig_blob, KEY_TYPE.as_bytes());
        put_string(&mut sig_blob, sig.as_ref());
        let mut outer = b"SSHSIG".to_vec();
        outer.extend_from_slice(&1u32.to_be_bytes());
        put_string(&mut outer, &self.public_blob);
        put_string(&mut outer, NAMESPACE.as_bytes());
        put_string(&mut outer, b"");
        put_string(&mut outer, b"sha512");
        put_string(&mut outer, &sig_blob);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&outer);
        let mut armored = String::from("-----BEGIN SSH SIGNATURE-----\n");
        for line in b64.as_bytes().chunks(ARMOR_COLUMNS) {
            armored.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            armored.push('\n');
        }
        armored.push_str("-----END SSH SIGNATURE-----");
        armored
    }

    /// The commit object `raw` (headers, a blank line, the message) signed: a `gpgsig` header
    /// after the others, its continuation lines indented by one space, as git writes it.
    pub fn sign_commit(&self, raw: &[u8]) -> Vec<u8> {
        let signature = self.sign(raw);
        let split = raw
            .windows(2)
            .position(|w| w == b"\n\n")
            .expect("a commit object has a blank line after its headers")
            + 1;
        let mut out = Vec::with_capacity(raw.len() + signature.len() + 64);
        out.extend_from_slice(&raw[..split]);
        out.extend_from_slice(b"gpgsig ");
        out.extend_from_slice(signature.replace('\n', "\n ").as_bytes());
        out.push(b'\n');
        out.extend_from_slice(&raw[split..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ssh-keygen -t ed25519 -N '' -C signer@test` (made for this test only).
    const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACA2qApiHvFNrpcGm9r+4he67LH7flqSS3TtfKOJqLQq7QAAAJBAPqNxQD6j
cQAAAAtzc2gtZWQyNTUxOQAAACA2qApiHvFNrpcGm9r+4he67LH7flqSS3TtfKOJqLQq7Q
AAAEC7PnJ6ImALn+ROnl9CEj46RyGE4l7zOCDIrkeAm2wO1zaoCmIe8U2ulwab2v7iF7rs
sft+WpJLdO18o4motCrtAAAAC3NpZ25lckB0ZXN0AQI=
-----END OPENSSH PRIVATE KEY-----
";

    #[test]
    fn an_ed25519_key_reads_and_shows_its_public_line() {
        let s = Signer::from_openssh(KEY.as_bytes()).unwrap();
        assert!(s
            .public_key()
            .starts_with("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA"));
        assert!(s.public_key().ends_with(" signer@test"));
        assert!(s.fingerprint().starts_with("SHA256:"));
    }

    #[test]
    fn a_signed_commit_has_the_gpgsig_header_before_the_message() {
        let s = Signer::from_openssh(KEY.as_bytes()).unwrap();
        let raw = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor a <a@x> 1 +0000\ncommitter c <c@x> 1 +0000\n\nmsg\n";
        let signed = String::from_utf8(s.sign_commit(raw)).unwrap();
        assert!(
            signed.contains("+0000\ngpgsig -----BEGIN SSH SIGNATURE-----\n "),
            "{signed}"
        );
        assert!(
            signed.ends_with(" -----END SSH SIGNATURE-----\n\nmsg\n"),
            "{signed}"
        );
    }

    #[test]
    fn unusable_keys_say_what_to_change() {
        assert!(Signer::from_openssh(b"hello")
            .unwrap_err()
            .contains("ssh-keygen"));
        let damaged = KEY.replace("b3BlbnNz", "b3BlbnNa");
        assert!(Signer::from_openssh(damaged.as_bytes()).is_err());
    }
}
