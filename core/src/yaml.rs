//! A small, deterministic YAML emitter for sanitized objects — the one place YAML is produced.
//!
//! Block style in the shape `kubectl get -o yaml` prints (sequences at their key's indent), keys in
//! canonical order. Scalars are written plain only when no YAML 1.1 or 1.2 reader could take them for
//! anything but a string; multi-line strings become literal blocks when that is exact; everything else
//! is double-quoted. Our own emitter keeps the archived `serde_yaml` off the write path and runs several
//! times faster; round-trip tests parse its output back with `serde_yaml`.

use crate::canonical::sanitized_bytes;
use crate::json::{Doc, JsonError, Kind, NodeId};

/// Renders canonical bytes (see [`crate::canonical`]) as a YAML document (no `---`), ending in a
/// newline. Keys come out in the order the bytes hold them, which for canonical bytes is the
/// canonical order.
pub fn render(canonical: &[u8]) -> Vec<u8> {
    let doc = Doc::parse(canonical).expect("canonical bytes are JSON the core wrote");
    render_doc(&doc)
}

/// Sanitizes an object's JSON text and renders it: the file the repository gets for it.
pub fn render_object(json: &[u8]) -> Result<Vec<u8>, JsonError> {
    sanitized_bytes(json).map(|c| render(&c))
}

/// Renders a parsed document in its own key order.
pub fn render_doc(doc: &Doc) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    let root = Doc::ROOT;
    match doc.kind(root) {
        Kind::Object if has_children(doc, root) => write_map(doc, root, 0, &mut out),
        Kind::Array if has_children(doc, root) => write_seq(doc, root, 0, &mut out),
        _ => {
            write_inline(doc, root, 0, &mut out);
            out.push(b'\n');
        }
    }
    out
}

fn has_children(doc: &Doc, id: NodeId) -> bool {
    doc.children(id).next().is_some()
}

fn indent(n: usize, out: &mut Vec<u8>) {
    out.resize(out.len() + n, b' ');
}

fn key_of<'d>(doc: &'d Doc, id: NodeId) -> &'d str {
    std::str::from_utf8(doc.key(id)).expect("keys are UTF-8 (checked at parse)")
}

/// Writes `key: value` at `ind`, starting at the current position (the caller wrote the indent).
fn write_entry_here(doc: &Doc, id: NodeId, ind: usize, out: &mut Vec<u8>) {
    write_scalar_str(key_of(doc, id), ind, true, out);
    out.push(b':');
    match doc.kind(id) {
        Kind::Object if has_children(doc, id) => {
            out.push(b'\n');
            write_map(doc, id, ind + 2, out);
        }
        // Sequences sit at their key's indent, as kubectl prints them.
        Kind::Array if has_children(doc, id) => {
            out.push(b'\n');
            write_seq(doc, id, ind, out);
        }
        _ => {
            out.push(b' ');
            write_inline(doc, id, ind + 2, out);
            out.push(b'\n');
        }
    }
}

fn write_map(doc: &Doc, map: NodeId, ind: usize, out: &mut Vec<u8>) {
    for c in doc.children(map) {
        indent(ind, out);
        write_entry_here(doc, c, ind, out);
    }
}

fn write_seq(doc: &Doc, seq: NodeId, ind: usize, out: &mut Vec<u8>) {
    for item in doc.children(seq) {
        indent(ind, out);
        out.extend_from_slice(b"- ");
        match doc.kind(item) {
            Kind::Object if has_children(doc, item) => {
                for (i, c) in doc.children(item).enumerate() {
                    if i > 0 {
                        indent(ind + 2, out);
                    }
                    write_entry_here(doc, c, ind + 2, out);
                }
            }
            Kind::Array if has_children(doc, item) => {
                out.push(b'\n');
                write_seq(doc, item, ind + 2, out);
            }
            _ => {
                write_inline(doc, item, ind + 2, out);
                out.push(b'\n');
            }
        }
    }
}

/// A scalar or empty collection on the current line; `ind` is the indent of a literal block's body.
fn write_inline(doc: &Doc, id: NodeId, ind: usize, out: &mut Vec<u8>) {
    match doc.kind(id) {
        // Canonical bytes hold numbers already normalized; the text is the number.
        Kind::Null | Kind::Bool | Kind::Number => out.extend_from_slice(doc.raw(id)),
        Kind::String => write_scalar_str(doc.str(id).expect("a string node"), ind, false, out),
        Kind::Array => out.extend_from_slice(b"[]"),
        Kind::Object => out.extend_from_slice(b"{}"),
    }
}

fn write_scalar_str(s: &str, ind: usize, is_key: bool, out: &mut Vec<u8>) {
    if is_plain_safe(s) {
        out.extend_from_slice(s.as_bytes());
    } else if !is_key && is_literal_safe(s) {
        write_literal(s, ind, out);
    } else {
        write_double_quoted(s, out);
    }
}

/// Words YAML 1.1 readers (Go's yaml, kubectl) resolve to booleans or null.
const RESERVED: [&str; 11] = [
    "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~", "",
];

/// Plain style only for strings that start with a letter, `_` or `/`, use a small safe alphabet, and
/// are no reserved word: nothing a reader could resolve to a number, bool, null, date or indicator.
fn is_plain_safe(s: &str) -> bool {
    let b = s.as_bytes();
    let Some(&first) = b.first() else {
        return false;
    };
    if !(first.is_ascii_alphabetic() || first == b'_' || first == b'/') || b[b.len() - 1] == b' ' {
        return false;
    }
    let body_ok = b.iter().enumerate().all(|(i, &c)| match c {
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'/' | b'@' => true,
        b':' => b.get(i + 1).is_some_and(|&n| n != b' ' && n != b':'),
        b' ' => b.get(i + 1).is_some_and(|&n| n != b'#' && n != b' '),
        _ => false,
    });
    body_ok && !RESERVED.iter().any(|r| s.eq_ignore_ascii_case(r))
}

/// A literal block reproduces a string exactly only if it has a line break, no carriage return or
/// non-printable character, does not start with a space or break, and has no whitespace-only line.
fn is_literal_safe(s: &str) -> bool {
    s.contains('\n')
        && !s.starts_with([' ', '\n', '\t'])
        && s.chars().all(|c| {
            c == '\n'
                || c == '\t'
                || (is_printable(c)
                    && c != '\r'
                    && c != '\u{85}'
                    && c != '\u{2028}'
                    && c != '\u{2029}')
        })
        && s.split('\n')
            .all(|line| line.is_empty() || !line.chars().all(|c| c == ' ' || c == '\t'))
}

fn write_literal(s: &str, ind: usize, out: &mut Vec<u8>) {
    let body = s.trim_end_matches('\n');
    let trailing = s.len() - body.len();
    out.extend_from_slice(match trailing {
        0 => b"|-",
        1 => b"|",
        _ => b"|+",
    });
    for line in body.split('\n') {
        out.push(b'\n');
        if !line.is_empty() {
            indent(ind, out);
            out.extend_from_slice(line.as_bytes());
        }
    }
    // The caller writes the final break; `|+` keeps the extra ones as empty lines.
    for _ in 1..trailing {
        out.push(b'\n');
    }
}

/// YAML's `c-printable` set, less the BOM (which readers strip).
fn is_printable(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{7e}' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
        && c != '\u{feff}'
}

fn write_double_quoted(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\r' => out.extend_from_slice(b"\\r"),
            c if is_printable(c) && c != '\u{85}' && c != '\u{2028}' && c != '\u{2029}' => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            c => {
                use std::io::Write;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use serde_json::{json, Value};

    /// Renders a value in canonical order, as the core renders sanitized objects.
    fn render_value(v: &Value) -> Vec<u8> {
        render(&crate::canonical::canonical_bytes(&serde_json::to_vec(v).unwrap()).unwrap())
    }

    fn round_trip(v: &Value) -> Value {
        let text = String::from_utf8(render_value(v)).unwrap();
        let parsed: Value = serde_yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("unparseable YAML ({e}):\n{text}"));
        parsed
    }

    #[test]
    fn renders_a_configmap_like_kubectl() {
        let v = json!({"data": {"LOG_LEVEL": "debug", "FEATURE_X": "true", "app.conf": "a=1\nb=2\n"},
            "metadata": {"name": "app-config", "namespace": "team-a", "labels": {"app": "shop"}},
            "kind": "ConfigMap", "apiVersion": "v1"});
        insta::assert_snapshot!(String::from_utf8(render_value(&v)).unwrap(), @r#"
        apiVersion: v1
        kind: ConfigMap
        metadata:
          labels:
            app: shop
          name: app-config
          namespace: team-a
        data:
          FEATURE_X: "true"
          LOG_LEVEL: debug
          app.conf: |
            a=1
            b=2
        "#);
    }

    #[test]
    fn renders_sequences_of_maps_at_the_key_indent() {
        let v = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.25",
            "ports": [{"containerPort": 80}], "args": ["--a", "b"]}], "volumes": [{"name": "t", "emptyDir": {}}]}}}});
        insta::assert_snapshot!(String::from_utf8(render_value(&v)).unwrap(), @r#"
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
        spec:
          replicas: 2
          template:
            spec:
              containers:
              - args:
                - "--a"
                - b
                image: nginx:1.25
                name: web
                ports:
                - containerPort: 80
              volumes:
              - emptyDir: {}
                name: t
        "#);
        assert_eq!(round_trip(&v), v);
    }

    #[test]
    fn ambiguous_scalars_are_quoted_and_round_trip() {
        for s in [
            "true",
            "No",
            "on",
            "~",
            "null",
            "",
            "80",
            "0x1F",
            "1e3",
            ".inf",
            "-1",
            "2001-12-14",
            "a: b",
            "x #c",
            " lead",
            "trail ",
            "@at",
            "*alias",
            "&anchor",
            "!tag",
            "%dir",
            "{a}",
            "[a]",
            "a,b",
            "é",
            "'q'",
            "\"q\"",
            "tab\there",
            "cr\r\nlf",
            "\u{7f}",
            "\u{85}",
            "\u{feff}bom",
            "line\n",
            "two\n\n",
            " x\ny",
            "a\n \nb",
            "\n",
        ] {
            let v = json!({"k": s});
            assert_eq!(round_trip(&v), v, "string {s:?} did not survive");
        }
    }

    #[test]
    fn nested_and_empty_collections_round_trip() {
        let v = json!({"a": [[1, 2], [], {}, [{"x": null}]], "b": {}, "c": [], "d": {"e": {"f": [true, 1.5, -3]}}});
        assert_eq!(round_trip(&v), v);
    }

    #[test]
    fn random_strings_round_trip_exactly() {
        let alphabet: Vec<char> =
            "ab Z09_-./:@#,'\"\\\t\n\r{}[]&*!|>%`?=~é\u{85}\u{2028}\u{1}\u{7f}\u{10348}"
                .chars()
                .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..4000 {
            let len = rng.gen_range(0..12);
            let s: String = (0..len)
                .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
                .collect();
            let v = json!({"key": s.clone(), s.clone(): [s.clone()]});
            assert_eq!(round_trip(&v), v, "string {s:?} did not survive");
        }
    }
}
