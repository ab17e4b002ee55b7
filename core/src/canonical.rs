//! Canonical bytes and content hashes of sanitized objects.
//!
//! The webhook and the watch see the same object through different encoders (field order, spacing).
//! Both paths hash this canonical form — compact JSON, `apiVersion`, `kind`, `metadata` first at the
//! top level, every other map's keys sorted — so the same object always gets the same hash.

use serde_json::{Map, Value};
use xxhash_rust::xxh64::xxh64;

/// Top-level keys written first, in this order.
pub(crate) const LEADING_KEYS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// Writes the canonical bytes of `value` into `out` (cleared first).
pub fn canonical_bytes_into(value: &Value, out: &mut Vec<u8>) {
    out.clear();
    match value {
        Value::Object(map) => write_top(map, out),
        other => write_value(other, out),
    }
}

/// The canonical bytes of `value`.
pub fn canonical_bytes(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    canonical_bytes_into(value, &mut out);
    out
}

/// xxHash64 (seed 0) of canonical bytes: the content hash of correlation keys and dedup.
pub fn content_hash(canonical: &[u8]) -> u64 {
    xxh64(canonical, 0)
}

/// A git blob id: SHA-1 over `blob {len}\0` and the bytes, as `git hash-object` computes it.
pub fn git_blob_id(bytes: &[u8]) -> [u8; 20] {
    let mut h = sha1_smol::Sha1::new();
    h.update(format!("blob {}\0", bytes.len()).as_bytes());
    h.update(bytes);
    h.digest().bytes()
}

fn write_top(map: &Map<String, Value>, out: &mut Vec<u8>) {
    out.push(b'{');
    let mut first = true;
    for key in LEADING_KEYS {
        if let Some(v) = map.get(key) {
            write_entry(&mut first, key, v, out);
        }
    }
    for_each_sorted(map, |k, v| {
        if !LEADING_KEYS.contains(&k.as_str()) {
            write_entry(&mut first, k, v, out);
        }
    });
    out.push(b'}');
}

fn write_entry(first: &mut bool, key: &str, value: &Value, out: &mut Vec<u8>) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    write_str(key, out);
    out.push(b':');
    write_value(value, out);
}

/// Calls `f` on map entries in key order, whatever order the map keeps them in (serde_json may be
/// built with `preserve_order` by another crate in the same build).
pub(crate) fn for_each_sorted<'a>(
    map: &'a Map<String, Value>,
    mut f: impl FnMut(&'a String, &'a Value),
) {
    if map_iterates_sorted() || map.keys().zip(map.keys().skip(1)).all(|(a, b)| a < b) {
        map.iter().for_each(|(k, v)| f(k, v));
    } else {
        let mut entries: Vec<(&String, &Value)> = map.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        entries.into_iter().for_each(|(k, v)| f(k, v));
    }
}

/// Whether `serde_json::Map` is the sorted (BTreeMap) flavour in this build; checked once.
fn map_iterates_sorted() -> bool {
    static SORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SORTED.get_or_init(|| {
        let mut m = Map::new();
        m.insert("b".into(), Value::Null);
        m.insert("a".into(), Value::Null);
        m.keys().next().map(String::as_str) == Some("a")
    })
}

fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            use std::io::Write;
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_str(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            let mut first = true;
            for_each_sorted(map, |k, v| write_entry(&mut first, k, v, out));
            out.push(b'}');
        }
    }
}

/// Bytes that JSON strings must escape: `"`, `\\` and the control characters.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

fn write_str(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !NEEDS_ESCAPE[b as usize] {
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
    use serde_json::json;

    #[test]
    fn leading_keys_come_first_and_the_rest_is_sorted() {
        let v = json!({"data": {"b": "2", "a": "1"}, "metadata": {"name": "x"}, "kind": "ConfigMap", "apiVersion": "v1"});
        let s = String::from_utf8(canonical_bytes(&v)).unwrap();
        assert_eq!(
            s,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"a":"1","b":"2"}}"#
        );
    }

    #[test]
    fn same_object_from_different_encoders_has_identical_bytes() {
        let a: Value = serde_json::from_str(r#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"namespace":"n","name":"x"},"data":{"k":"v\n\"q\""}}"#).unwrap();
        let b: Value = serde_json::from_str("{ \"apiVersion\" : \"v1\",\n \"data\": {\"k\": \"v\\n\\u0022q\\\"\"}, \"metadata\": {\"name\":\"x\",\"namespace\":\"n\"}, \"kind\":\"ConfigMap\"}").unwrap();
        assert_eq!(canonical_bytes(&a), canonical_bytes(&b));
        assert_eq!(
            content_hash(&canonical_bytes(&a)),
            content_hash(&canonical_bytes(&b))
        );
    }

    #[test]
    fn canonical_bytes_are_valid_json_of_the_same_value() {
        let v = json!({"apiVersion": "v1", "s": "tab\tctl\u{1}é\u{10348}", "n": [1, -2.5, null, true, {}], "e": {}});
        let back: Value = serde_json::from_slice(&canonical_bytes(&v)).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn blob_id_matches_git_hash_object() {
        // `printf 'hello\n' | git hash-object --stdin`
        let id = git_blob_id(b"hello\n");
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "ce013625030ba8dba906f756967f9e9ca394464a");
    }
}
