//! Canonical bytes and content hashes of sanitized objects.
//!
//! The webhook and the watch see the same object through different encoders (field order, spacing,
//! escapes). Both paths hash this canonical form — compact JSON, `apiVersion`, `kind`, `metadata`
//! first at the top level, every other map's keys sorted, duplicate keys resolved to the last —
//! so the same object always gets the same hash. It is written straight from the borrowed
//! [`Doc`], skipping what sanitization marked removed.

use xxhash_rust::xxh64::xxh64;

use crate::json::{
    is_plain_integer, Doc, JsonError, Kind, NodeId, Scratch, CANONICAL, REDACTED, REMOVED,
    STRING_STOP,
};
use crate::sanitize::{sanitize, TypeRules, REDACTED as REDACTED_TEXT};

/// Top-level keys written first, in this order.
pub(crate) const LEADING_KEYS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// Writes the canonical bytes of `doc` (as sanitization marked it) into `out`, cleared first.
/// `order` is scratch space for sorting keys, reused across calls.
pub(crate) fn write_canonical(doc: &Doc, out: &mut Vec<u8>, order: &mut Vec<NodeId>) {
    out.clear();
    order.clear();
    if doc.kind(Doc::ROOT) == Kind::Object {
        write_object(doc, Doc::ROOT, true, out, order);
    } else {
        write_value(doc, Doc::ROOT, out, order);
    }
}

#[cfg(test)]
/// The canonical bytes of JSON text, unsanitized.
pub(crate) fn canonical_bytes(json: &[u8]) -> Result<Vec<u8>, JsonError> {
    let doc = Doc::parse(json)?;
    let mut out = Vec::with_capacity(json.len());
    write_canonical(&doc, &mut out, &mut Vec::new());
    Ok(out)
}

/// The canonical bytes of an object after sanitization: what the repository's file is rendered
/// from and what its content hash is taken over.
pub fn sanitized_bytes(json: &[u8], rules: TypeRules) -> Result<Vec<u8>, JsonError> {
    let mut doc = Doc::parse(json)?;
    sanitize(&mut doc, rules);
    let mut out = Vec::with_capacity(json.len());
    write_canonical(&doc, &mut out, &mut Vec::new());
    Ok(out)
}

/// Parses, sanitizes and digests objects, reusing its buffers from object to object.
#[derive(Debug, Default)]
pub struct Digester {
    scratch: Scratch,
    order: Vec<NodeId>,
    canonical: Vec<u8>,
}

impl Digester {
    /// Parses `json` and hands the tree to `f` (which may sanitize it and finish the digest);
    /// the buffers come back afterwards.
    pub fn with_doc<R>(
        &mut self,
        json: &[u8],
        f: impl FnOnce(&mut Doc, &mut DigestOut) -> R,
    ) -> Result<R, JsonError> {
        let scratch = std::mem::take(&mut self.scratch);
        let mut doc = match Doc::parse_in(json, scratch) {
            Ok(doc) => doc,
            Err((e, scratch)) => {
                self.scratch = scratch;
                return Err(e);
            }
        };
        let mut out = DigestOut {
            order: &mut self.order,
            canonical: &mut self.canonical,
        };
        let r = f(&mut doc, &mut out);
        self.scratch = doc.recycle();
        Ok(r)
    }

    /// Sanitizes `json` by `rules` and returns its content hash and canonical size.
    pub fn digest(&mut self, json: &[u8], rules: TypeRules) -> Result<(u64, usize), JsonError> {
        self.with_doc(json, |doc, out| {
            sanitize(doc, rules);
            out.finish(doc)
        })
    }

    /// [`Digester::digest`] without leaving defaults out: what the pass saves or costs is the
    /// difference, measured on the same bytes (the core itself always leaves them out of the
    /// hash it joins and compares on).
    pub fn digest_keeping_defaults(
        &mut self,
        json: &[u8],
        rules: TypeRules,
    ) -> Result<(u64, usize), JsonError> {
        self.with_doc(json, |doc, out| {
            crate::sanitize::sanitize_keeping_defaults(doc, rules);
            out.finish(doc)
        })
    }
}

/// Where a [`Digester`] writes canonical bytes.
#[derive(Debug)]
pub struct DigestOut<'a> {
    order: &'a mut Vec<NodeId>,
    canonical: &'a mut Vec<u8>,
}

impl DigestOut<'_> {
    /// Writes `doc`'s canonical bytes; returns their content hash and size.
    pub fn finish(&mut self, doc: &Doc) -> (u64, usize) {
        write_canonical(doc, self.canonical, self.order);
        (content_hash(self.canonical), self.canonical.len())
    }
}

/// xxHash64 (seed 0) of canonical bytes: the content hash of correlation keys and dedup.
pub(crate) fn content_hash(canonical: &[u8]) -> u64 {
    xxh64(canonical, 0)
}

/// A git blob id: SHA-1 over `blob {len}\0` and the bytes, as `git hash-object` computes it.
/// (RustCrypto's `sha1` uses the CPU's SHA extensions where it has them: every planned file is
/// hashed, and that was an eighth of a changing event's cost.)
pub fn git_blob_id(bytes: &[u8]) -> [u8; 20] {
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    h.update(b"blob ");
    h.update(bytes.len().to_string().as_bytes());
    h.update(b"\0");
    h.update(bytes);
    h.finalize().into()
}

/// Pushes the members of `obj` that count onto `order`, in canonical order, and returns where they
/// start: the leading keys first at the top level, the rest sorted by key. Of duplicate keys only
/// the last counts, as JSON readers resolve them; members sanitization removed are left out after
/// that choice. `order` is shared by every level of a walk: the caller reads `order[base..]` (copying
/// each id out, as deeper levels push past it) and truncates back to `base` when done.
pub(crate) fn members_in_order(
    doc: &Doc,
    obj: NodeId,
    top: bool,
    order: &mut Vec<NodeId>,
) -> usize {
    let base = order.len();
    if top {
        order.extend(doc.lookup(obj, LEADING_KEYS).into_iter().flatten());
    }
    let rest = order.len();
    let mut sorted = true;
    let mut prev: &[u8] = &[];
    for c in doc.children(obj) {
        let key = doc.key(c);
        if top && is_leading(key) {
            continue;
        }
        sorted &= order.len() == rest || prev < key;
        prev = key;
        order.push(c);
    }
    // Go's encoder writes map keys sorted already; struct fields need the sort.
    if !sorted {
        order[rest..].sort_unstable_by(|&a, &b| doc.key(a).cmp(doc.key(b)).then(a.cmp(&b)));
    }
    let mut kept = rest;
    for i in rest..order.len() {
        let c = order[i];
        // Strictly ascending input has no duplicates; sorted ones sit side by side, last last.
        let superseded = !sorted && order.get(i + 1).is_some_and(|&n| doc.key(n) == doc.key(c));
        if !superseded && !doc.has(c, REMOVED) {
            order[kept] = c;
            kept += 1;
        }
    }
    order.truncate(kept);
    base
}

fn write_object(doc: &Doc, obj: NodeId, top: bool, out: &mut Vec<u8>, order: &mut Vec<NodeId>) {
    out.push(b'{');
    let mut first = true;
    let base = members_in_order(doc, obj, top, order);
    for i in base..order.len() {
        let c = order[i];
        write_member(doc, c, &mut first, out, order);
    }
    order.truncate(base);
    out.push(b'}');
}

fn is_leading(key: &[u8]) -> bool {
    LEADING_KEYS.iter().any(|k| k.as_bytes() == key)
}

fn write_member(
    doc: &Doc,
    c: NodeId,
    first: &mut bool,
    out: &mut Vec<u8>,
    order: &mut Vec<NodeId>,
) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    if doc.key_verbatim(c) {
        write_verbatim(doc.key(c), out);
    } else {
        write_str(doc.key(c), out);
    }
    out.push(b':');
    if doc.has(c, REDACTED) {
        write_str(REDACTED_TEXT.as_bytes(), out);
    } else {
        write_value(doc, c, out, order);
    }
}

fn write_value(doc: &Doc, id: NodeId, out: &mut Vec<u8>, order: &mut Vec<NodeId>) {
    let kind = doc.kind(id);
    if matches!(kind, Kind::Object | Kind::Array) && doc.has(id, CANONICAL) {
        // Already canonical (the parser checked, sanitization left it alone): copied whole. Most of
        // an object's bytes are in such maps, so this is most of the writing.
        out.extend_from_slice(doc.raw(id));
        return;
    }
    match kind {
        Kind::Null | Kind::Bool => out.extend_from_slice(doc.raw(id)),
        Kind::Number => write_number(doc.raw(id), out),
        Kind::String if doc.str_verbatim(id) => write_verbatim(doc.str_bytes(id), out),
        Kind::String => write_str(doc.str_bytes(id), out),
        Kind::Array => {
            out.push(b'[');
            for (i, c) in doc.children(id).enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(doc, c, out, order);
            }
            out.push(b']');
        }
        Kind::Object => write_object(doc, id, false, out, order),
    }
}

/// Integers of up to 18 digits are written as they came; anything else (fractions, exponents,
/// `-0`, huge integers) as serde_json prints the number it reads, so every encoding of one number
/// gives the same bytes.
pub(crate) fn write_number(raw: &[u8], out: &mut Vec<u8>) {
    if is_plain_integer(raw) {
        out.extend_from_slice(raw);
    } else {
        use std::io::Write;
        match serde_json::from_slice::<serde_json::Number>(raw) {
            Ok(n) => {
                let _ = write!(out, "{n}");
            }
            // Out of f64's range (`1e400`): valid JSON no reader agrees on; kept as written.
            Err(_) => out.extend_from_slice(raw),
        }
    }
}

/// A string that came without escapes needs none: copied between quotes as it is.
fn write_verbatim(bytes: &[u8], out: &mut Vec<u8>) {
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    out.extend_from_slice(bytes);
    out.push(b'"');
}

fn write_str(bytes: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !STRING_STOP[b as usize] {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xf) as usize]);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn canon(v: &Value) -> Vec<u8> {
        canonical_bytes(&serde_json::to_vec(v).unwrap()).unwrap()
    }

    #[test]
    fn leading_keys_come_first_and_the_rest_is_sorted() {
        let v = json!({"data": {"b": "2", "a": "1"}, "metadata": {"name": "x"}, "kind": "ConfigMap", "apiVersion": "v1"});
        let s = String::from_utf8(canon(&v)).unwrap();
        assert_eq!(
            s,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"a":"1","b":"2"}}"#
        );
    }

    #[test]
    fn same_object_from_different_encoders_has_identical_bytes() {
        let a = br#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"namespace":"n","name":"x"},"data":{"k":"v\n\"q\"","n":[1.0,1e2,-0]}}"#;
        let b = "{ \"apiVersion\" : \"v1\",\n \"data\": {\"n\": [1.00, 100.0, -0.0], \"k\": \"v\\n\\u0022q\\\"\"}, \"metadata\": {\"name\":\"x\",\"namespace\":\"n\"}, \"kind\":\"Config\\u004dap\"}";
        assert_eq!(
            canonical_bytes(a).unwrap(),
            canonical_bytes(b.as_bytes()).unwrap()
        );
    }

    #[test]
    fn canonical_bytes_are_valid_json_of_the_same_value() {
        let v = json!({"apiVersion": "v1", "s": "tab\tctl\u{1}é\u{10348}", "n": [1, -2.5, null, true, {}, 12345678901234567890u64], "e": {}});
        let back: Value = serde_json::from_slice(&canon(&v)).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn numbers_beyond_f64_are_kept_as_written_not_a_panic() {
        assert_eq!(
            canonical_bytes(br#"{"a":1e400,"b":-1E+400}"#).unwrap(),
            br#"{"a":1e400,"b":-1E+400}"#
        );
    }

    #[test]
    fn of_duplicate_keys_the_last_is_written() {
        let bytes = canonical_bytes(br#"{"b":1,"a":{"y":1,"x":2,"y":3},"b":2}"#).unwrap();
        assert_eq!(bytes, br#"{"a":{"x":2,"y":3},"b":2}"#);
    }

    /// The canonical writer copies values the parser found canonical; member by member it must
    /// write the very same bytes, sanitized or not, whatever the encoder.
    #[test]
    fn copying_canonical_values_writes_what_writing_them_member_by_member_writes() {
        use crate::json::tests::random_value;
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut texts: Vec<String> =
            include_str!("../tests/fixtures/kube-apiserver-1.20/watch-configmaps.jsonl")
                .lines()
                .chain(
                    include_str!("../tests/fixtures/kube-apiserver-1.20/admission.jsonl").lines(),
                )
                .map(String::from)
                .collect();
        // Duplicate keys, which a generated map cannot hold.
        texts.push(
            r#"{"a":{"k":1,"k":2},"b":[{"x":{"y":1},"x":{"y":2}}],"c":{"k":"\u006b","k":"k"}}"#
                .into(),
        );
        for _ in 0..3000 {
            let v = random_value(&mut rng, 0);
            texts.push(serde_json::to_string(&v).unwrap());
            texts.push(serde_json::to_string_pretty(&v).unwrap());
            // A Kubernetes-shaped object whose maps sanitization edits inside.
            let object = json!({"kind": "Secret", "apiVersion": "v1", "metadata": {
                "annotations": {"a": v, "kubectl.kubernetes.io/last-applied-configuration": "{}"},
                "labels": {"x": "y"}, "name": "n", "resourceVersion": "1"},
                "data": {"k": "djE=", "l": "djI="}, "status": {}});
            texts.push(serde_json::to_string(&object).unwrap());
        }
        let mut copied = 0;
        for text in &texts {
            for sanitized in [false, true] {
                let mut doc = Doc::parse(text.as_bytes()).unwrap();
                if sanitized {
                    sanitize(&mut doc, TypeRules::Secret);
                }
                copied += (0..doc.subtree_end(Doc::ROOT))
                    .filter(|&id| doc.has(id, CANONICAL) && doc.kind(id) == Kind::Object)
                    .count();
                let mut fast = Vec::new();
                write_canonical(&doc, &mut fast, &mut Vec::new());
                doc.forget_canonical();
                let mut slow = Vec::new();
                write_canonical(&doc, &mut slow, &mut Vec::new());
                assert_eq!(
                    String::from_utf8(fast).unwrap(),
                    String::from_utf8(slow).unwrap(),
                    "text {text}, sanitized {sanitized}"
                );
            }
        }
        assert!(copied > 10_000, "only {copied} objects were copied whole");
    }

    #[test]
    fn blob_id_matches_git_hash_object() {
        // `printf 'hello\n' | git hash-object --stdin`
        let id = git_blob_id(b"hello\n");
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "ce013625030ba8dba906f756967f9e9ca394464a");
    }
}
