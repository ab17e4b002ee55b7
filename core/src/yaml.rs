//! A small, deterministic YAML emitter for sanitized objects — the one place YAML is produced.
//!
//! Block style in the shape `kubectl get -o yaml` prints (sequences at their key's indent), keys in
//! canonical order. Scalars are written plain only when no YAML 1.1 or 1.2 reader could take them for
//! anything but a string; multi-line strings become literal blocks when that is exact; everything else
//! is double-quoted. Our own emitter keeps the archived `serde_yaml` off the write path and runs several
//! times faster; round-trip tests parse its output back with `serde_yaml`.

use crate::canonical::{members_in_order, write_number};
use crate::json::{Doc, JsonError, Kind, NodeId, REDACTED};
use crate::sanitize::TypeRules;
use crate::sanitize::REDACTED as REDACTED_TEXT;

#[cfg(test)]
/// Renders canonical bytes (see [`crate::canonical`]) as a YAML document (no `---`), ending in a
/// newline.
pub(crate) fn render(canonical: &[u8]) -> Vec<u8> {
    let doc = Doc::parse(canonical).expect("canonical bytes are JSON the core wrote");
    render_doc(&doc)
}

/// Sanitizes an object's JSON text by its type's rules and renders it: the file the repository
/// gets for it.
pub fn render_object(json: &[u8], rules: TypeRules) -> Result<Vec<u8>, JsonError> {
    let mut doc = Doc::parse(json)?;
    crate::sanitize::sanitize(&mut doc, rules);
    Ok(render_doc(&doc))
}

/// [`render_object`] with every default kept ([`crate::defaults`] not applied): the file of a
/// repository whose `spec.output.defaults` is `Keep`.
pub fn render_object_keeping_defaults(json: &[u8], rules: TypeRules) -> Result<Vec<u8>, JsonError> {
    let mut doc = Doc::parse(json)?;
    crate::sanitize::sanitize_keeping_defaults(&mut doc, rules);
    Ok(render_doc(&doc))
}

/// [`render_object`] for a custom resource whose CRD's schema declares defaults: those go too.
pub fn render_custom_object(
    json: &[u8],
    defaults: &crate::schema_defaults::SchemaDefaults,
) -> Result<Vec<u8>, JsonError> {
    let mut doc = Doc::parse(json)?;
    crate::sanitize::sanitize(&mut doc, TypeRules::Plain);
    crate::schema_defaults::omit(&mut doc, defaults);
    Ok(render_doc(&doc))
}

/// Renders a parsed document as sanitization marked it, keys in canonical order: the same YAML
/// whether the document is an object's JSON text or its canonical bytes.
pub(crate) fn render_doc(doc: &Doc) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    render_into(doc, &mut Vec::new(), &mut out);
    out
}

/// [`render_doc`] into `out` (cleared first), with `order` as reused scratch space.
pub(crate) fn render_into(doc: &Doc, order: &mut Vec<NodeId>, out: &mut Vec<u8>) {
    out.clear();
    order.clear();
    let root = Doc::ROOT;
    match doc.kind(root) {
        Kind::Object => {
            let base = members_in_order(doc, root, true, order);
            if order.len() > base {
                write_map(doc, base, 0, order, out);
            } else {
                out.extend_from_slice(b"{}\n");
            }
        }
        Kind::Array if has_children(doc, root) => write_seq(doc, root, 0, order, out),
        _ => {
            write_inline(doc, root, 0, out);
            out.push(b'\n');
        }
    }
}

fn has_children(doc: &Doc, id: NodeId) -> bool {
    doc.children(id).next().is_some()
}

fn indent(n: usize, out: &mut Vec<u8>) {
    out.resize(out.len() + n, b' ');
}

/// Writes `key: value` at `ind`, starting at the current position (the caller wrote the indent).
fn write_entry_here(doc: &Doc, id: NodeId, ind: usize, order: &mut Vec<NodeId>, out: &mut Vec<u8>) {
    write_scalar_str(doc.key(id), ind, true, out);
    out.push(b':');
    if doc.has(id, REDACTED) {
        out.push(b' ');
        write_scalar_str(REDACTED_TEXT.as_bytes(), ind + 2, false, out);
        out.push(b'\n');
        return;
    }
    match doc.kind(id) {
        Kind::Object => {
            let base = members_in_order(doc, id, false, order);
            if order.len() > base {
                out.push(b'\n');
                write_map(doc, base, ind + 2, order, out);
            } else {
                out.extend_from_slice(b" {}\n");
            }
        }
        // Sequences sit at their key's indent, as kubectl prints them.
        Kind::Array if has_children(doc, id) => {
            out.push(b'\n');
            write_seq(doc, id, ind, order, out);
        }
        _ => {
            out.push(b' ');
            write_inline(doc, id, ind + 2, out);
            out.push(b'\n');
        }
    }
}

/// Writes the members at `order[base..]` at `ind`, each on its own line, and truncates `order`.
fn write_map(doc: &Doc, base: usize, ind: usize, order: &mut Vec<NodeId>, out: &mut Vec<u8>) {
    for i in base..order.len() {
        let c = order[i];
        indent(ind, out);
        write_entry_here(doc, c, ind, order, out);
    }
    order.truncate(base);
}

fn write_seq(doc: &Doc, seq: NodeId, ind: usize, order: &mut Vec<NodeId>, out: &mut Vec<u8>) {
    for item in doc.children(seq) {
        indent(ind, out);
        out.extend_from_slice(b"- ");
        match doc.kind(item) {
            Kind::Object => {
                let base = members_in_order(doc, item, false, order);
                if order.len() == base {
                    out.extend_from_slice(b"{}\n");
                }
                for i in base..order.len() {
                    let c = order[i];
                    if i > base {
                        indent(ind + 2, out);
                    }
                    write_entry_here(doc, c, ind + 2, order, out);
                }
                order.truncate(base);
            }
            Kind::Array if has_children(doc, item) => {
                out.push(b'\n');
                write_seq(doc, item, ind + 2, order, out);
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
        Kind::Null | Kind::Bool => out.extend_from_slice(doc.raw(id)),
        Kind::Number => write_number(doc.raw(id), out),
        Kind::String => write_scalar_str(doc.str_bytes(id), ind, false, out),
        Kind::Array => out.extend_from_slice(b"[]"),
        Kind::Object => out.extend_from_slice(b"{}"),
    }
}

/// Writes a string (UTF-8, checked when its document was parsed) in the style it needs.
fn write_scalar_str(s: &[u8], ind: usize, is_key: bool, out: &mut Vec<u8>) {
    if is_plain_safe(s) {
        out.extend_from_slice(s);
        return;
    }
    let s = std::str::from_utf8(s).expect("parsed JSON strings are UTF-8");
    if !is_key && is_literal_safe(s) {
        write_literal(s, ind, out);
    } else {
        write_double_quoted(s, out);
    }
}

/// Words YAML 1.1 readers (Go's yaml, kubectl) resolve to booleans or null.
const RESERVED: [&str; 11] = [
    "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~", "",
];

/// Bytes a plain scalar may hold anywhere: `[A-Za-z0-9_./@-]`.
const PLAIN_BODY: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'/' | b'@');
        b += 1;
    }
    t
};

/// Whether every byte of `b` is in [`PLAIN_BODY`]: eight bytes per step with byte-wise range tests
/// (the table lookup per byte was a tenth of a changing watch event), the tail through the table.
fn all_plain_body(b: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    // For bytes below 0x80 every sum stays below 0x100, so no carry crosses a byte: the high bit
    // of `x + (0x80 - lo)` says `x >= lo`, that of `x + (0x7f - hi)` says `x > hi`.
    let in_range = |w: u64, lo: u8, hi: u8| {
        w.wrapping_add(ONES * u64::from(0x80 - lo)) & !w.wrapping_add(ONES * u64::from(0x7f - hi))
    };
    // The high bit of `(v & 0x7f) + 0x7f | v` says the byte `v` is not zero.
    let equal = |w: u64, c: u8| {
        let v = w ^ (ONES * u64::from(c));
        !((v & LOW7).wrapping_add(LOW7) | v)
    };
    let words = b.chunks_exact(8);
    let tail = words.remainder();
    let mut ok = true;
    for word in words {
        let w = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        let safe = in_range(w, b'-', b'9')
            | in_range(w, b'@', b'Z')
            | in_range(w, b'a', b'z')
            | equal(w, b'_');
        ok &= w & HIGH == 0 && safe & HIGH == HIGH;
    }
    ok && tail.iter().all(|&c| PLAIN_BODY[c as usize])
}

/// Plain style only for strings that start with a letter, `_` or `/`, use a small safe alphabet, and
/// are no reserved word: nothing a reader could resolve to a number, bool, null, date or indicator.
fn is_plain_safe(b: &[u8]) -> bool {
    let Some(&first) = b.first() else {
        return false;
    };
    if !(first.is_ascii_alphabetic() || first == b'_' || first == b'/') || b[b.len() - 1] == b' ' {
        return false;
    }
    // Most strings are names and values of the safe alphabet only: eight bytes at a time.
    let body_ok = all_plain_body(b)
        || b.iter().enumerate().all(|(i, &c)| {
            PLAIN_BODY[c as usize]
                || match c {
                    b':' => b.get(i + 1).is_some_and(|&n| n != b' ' && n != b':'),
                    b' ' => b.get(i + 1).is_some_and(|&n| n != b'#' && n != b' '),
                    _ => false,
                }
        });
    // Every reserved word is at most five bytes long.
    body_ok
        && (b.len() > 5
            || !RESERVED
                .iter()
                .any(|r| b.eq_ignore_ascii_case(r.as_bytes())))
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

    #[test]
    fn the_word_test_of_the_plain_alphabet_agrees_with_the_table_for_every_byte_and_position() {
        for c in 0..=255u8 {
            for len in 1..=17 {
                for at in 0..len {
                    let mut s = vec![b'a'; len];
                    s[at] = c;
                    let table = s.iter().all(|&c| PLAIN_BODY[c as usize]);
                    assert_eq!(all_plain_body(&s), table, "byte {c:#04x} at {at} of {len}");
                }
            }
        }
    }
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

    /// Objects whose sanitization touches every rule: unsorted and duplicate keys, removed
    /// metadata, emptied maps, a Secret, pod template timestamps, escapes, odd numbers.
    fn sanitize_shapes(rng: &mut ChaCha8Rng) -> Value {
        let pick = |rng: &mut ChaCha8Rng, xs: &[&str]| xs[rng.gen_range(0..xs.len())].to_owned();
        let kinds = [
            "ConfigMap",
            "Secret",
            "Service",
            "Deployment",
            "CronJob",
            "Pod",
        ];
        let keys = [
            "a",
            "b",
            "z",
            "k8s.io/x",
            "kustomize.toolkit.fluxcd.io/n",
            "deployment.kubernetes.io/revision",
            "kubectl.kubernetes.io/last-applied-configuration",
            "q\"uote",
            "line\nbreak",
            "é",
        ];
        let map = |rng: &mut ChaCha8Rng| -> Value {
            Value::Object(
                (0..rng.gen_range(0..4))
                    .map(|_| (pick(rng, &keys), json!(pick(rng, &keys))))
                    .collect(),
            )
        };
        let labels = map(rng);
        let annotations = map(rng);
        let data = map(rng);
        json!({"kind": pick(rng, &kinds), "apiVersion": pick(rng, &["v1", "apps/v1", "batch/v1"]),
            "metadata": {"name": "n", "generateName": "g-", "uid": "u", "resourceVersion": "9",
                "labels": labels, "annotations": annotations, "managedFields": [{"f": 1}]},
            "spec": {"clusterIP": "10.0.0.1", "nodeName": "x", "replicas": rng.gen_range(-3..3),
                "ratio": [1.5, 1e2, -0.0, 12345678901234567890u64],
                "template": {"metadata": {"creationTimestamp": null}, "spec": {"containers": [{}, []]}},
                "jobTemplate": {"spec": {"template": {"metadata": {"creationTimestamp": null, "labels": {"a": "b"}}}}}},
            "data": data, "stringData": {"t": "secret"}, "status": {"phase": "x"}})
    }

    #[test]
    fn an_object_renders_the_same_from_its_text_as_from_its_canonical_bytes() {
        let mut texts: Vec<String> = [
            include_str!("../tests/fixtures/kube-apiserver-1.20/watch-configmaps.jsonl"),
            include_str!("../tests/fixtures/kube-apiserver-1.20/watch-deployments.jsonl"),
        ]
        .iter()
        .flat_map(|f| f.lines())
        .map(|l| crate::json::split_watch_line(l.as_bytes()).unwrap().1)
        .map(|o| String::from_utf8(o.as_bytes().to_vec()).unwrap())
        .collect();
        texts.push(r#"{"metadata":{"name":"a","labels":{"b":"1","a":"2","b":"3"}},"kind":"ConfigMap","apiVersion":"v1","data":{"k":"v\u0041"},"kind":"Secret"}"#.into());
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for _ in 0..500 {
            texts.push(serde_json::to_string(&sanitize_shapes(&mut rng)).unwrap());
        }
        for text in &texts {
            for rules in [TypeRules::Plain, TypeRules::Secret, TypeRules::Deployment] {
                let direct = render_object(text.as_bytes(), rules).unwrap();
                let via_canonical =
                    render(&crate::canonical::sanitized_bytes(text.as_bytes(), rules).unwrap());
                assert_eq!(
                    String::from_utf8(direct).unwrap(),
                    String::from_utf8(via_canonical).unwrap(),
                    "object {text}"
                );
            }
        }
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
