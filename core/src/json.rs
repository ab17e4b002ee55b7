//! Objects as JSON text, and a borrowed tree over that text.
//!
//! Watch events and admission requests arrive as JSON. Building a `serde_json::Value` for each one
//! allocates every key and string and frees them again, which costs more than everything else the
//! core does with an event that changes nothing. [`Doc`] is one flat vector of nodes (reused from
//! event to event); keys and strings are slices of the input, decoded into a side buffer only when
//! they hold escapes. Sanitization marks nodes instead of removing them, so the input is read once
//! and never copied.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;
use thiserror::Error;

/// An object's JSON text, as the API server sent it.
#[derive(Clone, PartialEq, Eq)]
pub struct RawObject(Arc<[u8]>);

impl RawObject {
    /// Wraps JSON text (checked when the core reads it).
    pub fn new(bytes: impl Into<Arc<[u8]>>) -> Self {
        Self(bytes.into())
    }

    /// The JSON text.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The text as a `serde_json::Value`, if it is JSON.
    pub fn to_value(&self) -> Option<Value> {
        serde_json::from_slice(&self.0).ok()
    }

    /// The object with `apiVersion` and `kind` first when it is an object that has neither (a
    /// list item, as the API server lists); otherwise the same text. The rest is kept byte for
    /// byte.
    pub fn with_type_meta(&self, api_version: &str, kind: &str) -> RawObject {
        let text = self.as_bytes();
        let untyped = Doc::parse(text).is_ok_and(|doc| {
            doc.kind(Doc::ROOT) == Kind::Object
                && doc.lookup(Doc::ROOT, ["apiVersion", "kind"]) == [None, None]
        });
        if !untyped {
            return self.clone();
        }
        let head =
            serde_json::to_string(&serde_json::json!({"apiVersion": api_version, "kind": kind}))
                .expect("strings serialize");
        let start = text.iter().position(|&b| b == b'{').expect("an object") + 1;
        let rest = &text[start..];
        let mut out = Vec::with_capacity(head.len() + text.len() + 1);
        out.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
        if rest.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'}') {
            out.push(b',');
        }
        out.extend_from_slice(rest);
        RawObject::new(out)
    }
}

impl From<&Value> for RawObject {
    fn from(v: &Value) -> Self {
        Self::new(serde_json::to_vec(v).expect("a Value always serializes"))
    }
}

impl From<Value> for RawObject {
    fn from(v: Value) -> Self {
        Self::from(&v)
    }
}

/// Recorded as a JSON string holding the object's exact text, so that a replay hands the core the
/// same bytes the API server sent (the core's fast paths depend on the text, not only its value).
impl serde::Serialize for RawObject {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => Err(serde::ser::Error::custom("object text is not UTF-8")),
        }
    }
}

impl<'de> serde::Deserialize<'de> for RawObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Ok(RawObject::new(text.into_bytes()))
    }
}

impl fmt::Debug for RawObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", String::from_utf8_lossy(&self.0))
    }
}

/// Splits one line of a watch stream (`{"type": "ADDED", "object": {...}}`) into its type and the
/// object's text, copied out without building a tree.
pub fn split_watch_line(line: &[u8]) -> Result<(String, RawObject), JsonError> {
    let doc = Doc::parse(line)?;
    let kind = doc.get_str(Doc::ROOT, "type");
    let object = doc
        .get(Doc::ROOT, "object")
        .filter(|&o| doc.kind(o) == Kind::Object);
    match (kind, object) {
        (Some(kind), Some(object)) => Ok((kind.to_owned(), RawObject::new(doc.raw(object)))),
        _ => Err(JsonError {
            what: "a watch line needs `type` and an `object`",
            at: 0,
        }),
    }
}

/// Why text is not JSON.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("invalid JSON: {what} at byte {at}")]
pub struct JsonError {
    /// What is wrong.
    pub what: &'static str,
    /// Where, as a byte offset into the text.
    pub at: usize,
}

/// Deepest nesting accepted (serde_json's default limit too); deeper input is refused, not recursed.
pub const DEPTH_MAX: usize = 128;

/// A node's index in its [`Doc`]; the root is 0.
pub(crate) type NodeId = u32;

/// What a node holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool,
    /// A number, kept as its text.
    Number,
    /// A string.
    String,
    /// An array.
    Array,
    /// An object.
    Object,
}

#[derive(Clone, Copy, Debug, Default)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..(self.start + self.len) as usize
    }
}

/// The key lives in the side buffer (it had escapes).
const KEY_DECODED: u8 = 1;
/// The string value lives in the side buffer.
const VAL_DECODED: u8 = 2;
/// Sanitization removed this member.
pub(crate) const REMOVED: u8 = 4;
/// Sanitization replaced this value (a Secret's).
pub(crate) const REDACTED: u8 = 8;
/// The value's source text is already in canonical form (see `canonical`): compact, object keys
/// strictly ascending and without escapes, strings without escapes, numbers plain integers, and
/// nothing inside marked by sanitization. The canonical writer copies such a value as it came;
/// Go's encoder writes Kubernetes' maps (`data`, `labels`, `spec.selector`, ...) this way.
pub(crate) const CANONICAL: u8 = 16;

#[derive(Clone, Copy, Debug)]
struct Node {
    kind: Kind,
    flags: u8,
    /// The member's key, for children of objects.
    key: Span,
    /// Strings: the decoded text; everything else: the value's source text.
    val: Span,
    /// One past the last node of this node's subtree: the next sibling, if any.
    end: NodeId,
}

/// Buffers a [`Doc`] reuses; keep one per parser and hand it back with [`Doc::recycle`].
#[derive(Debug, Default)]
pub struct Scratch {
    nodes: Vec<Node>,
    text: Vec<u8>,
}

/// A parsed JSON text: nodes in document order, each subtree contiguous.
#[derive(Debug)]
pub struct Doc<'s> {
    src: &'s [u8],
    nodes: Vec<Node>,
    text: Vec<u8>,
}

impl<'s> Doc<'s> {
    /// Parses `src`, which must be exactly one JSON value (whitespace around it allowed).
    pub fn parse(src: &'s [u8]) -> Result<Self, JsonError> {
        Self::parse_in(src, Scratch::default()).map_err(|(e, _)| e)
    }

    /// Parses `src` into reused buffers; on error the buffers come back with it.
    pub fn parse_in(src: &'s [u8], scratch: Scratch) -> Result<Self, (JsonError, Scratch)> {
        let Scratch {
            mut nodes,
            mut text,
        } = scratch;
        nodes.clear();
        text.clear();
        let mut p = Parser {
            src,
            pos: 0,
            nodes,
            text,
            spaced: 0,
            failure: None,
        };
        match p.document() {
            Ok(()) => Ok(Doc {
                src,
                nodes: p.nodes,
                text: p.text,
            }),
            Err(Stop) => Err((
                p.failure.take().expect("a stop has its reason"),
                Scratch {
                    nodes: p.nodes,
                    text: p.text,
                },
            )),
        }
    }

    /// Returns the buffers for the next parse.
    pub fn recycle(self) -> Scratch {
        Scratch {
            nodes: self.nodes,
            text: self.text,
        }
    }

    /// The root node.
    pub const ROOT: NodeId = 0;

    /// What `id` holds.
    pub fn kind(&self, id: NodeId) -> Kind {
        self.nodes[id as usize].kind
    }

    /// The decoded key of an object member.
    pub fn key(&self, id: NodeId) -> &[u8] {
        let n = &self.nodes[id as usize];
        if n.flags & KEY_DECODED != 0 {
            &self.text[n.key.range()]
        } else {
            &self.src[n.key.range()]
        }
    }

    /// The decoded text of a string node, `None` for other kinds.
    pub fn str(&self, id: NodeId) -> Option<&str> {
        let n = &self.nodes[id as usize];
        if n.kind != Kind::String {
            return None;
        }
        // Both buffers hold valid UTF-8 (the source is checked, decoding writes chars), so this
        // check only guards the invariant.
        std::str::from_utf8(self.str_bytes(id)).ok()
    }

    /// Whether a member's key is exactly its source text, which then needs no escaping: JSON text
    /// without escapes holds no quote, backslash or control character.
    pub(crate) fn key_verbatim(&self, id: NodeId) -> bool {
        self.nodes[id as usize].flags & KEY_DECODED == 0
    }

    /// Whether a string node's text is exactly its source text (see [`Self::key_verbatim`]).
    pub(crate) fn str_verbatim(&self, id: NodeId) -> bool {
        self.nodes[id as usize].flags & VAL_DECODED == 0
    }

    /// The decoded text of a string node as bytes, `None` for other kinds: for text that is only
    /// compared or hashed, without [`Self::str`]'s UTF-8 check.
    pub fn str_raw(&self, id: NodeId) -> Option<&[u8]> {
        (self.kind(id) == Kind::String).then(|| self.str_bytes(id))
    }

    /// The decoded bytes of a string node.
    pub(crate) fn str_bytes(&self, id: NodeId) -> &[u8] {
        let n = &self.nodes[id as usize];
        if n.flags & VAL_DECODED != 0 {
            &self.text[n.val.range()]
        } else {
            &self.src[n.val.range()]
        }
    }

    /// The source text of a value that is not a string: a number's digits, a literal, or a whole
    /// array or object.
    pub fn raw(&self, id: NodeId) -> &'s [u8] {
        let n = &self.nodes[id as usize];
        invariant!(n.kind != Kind::String, "strings are read with str()");
        &self.src[n.val.range()]
    }

    /// Whether a bool node is `true`.
    pub fn is_true(&self, id: NodeId) -> bool {
        self.kind(id) == Kind::Bool && self.raw(id) == b"true"
    }

    /// The children of an array or object, in document order (sanitization marks included).
    pub fn children(&self, id: NodeId) -> Children<'_, 's> {
        Children {
            doc: self,
            next: id + 1,
            end: self.nodes[id as usize].end,
        }
    }

    /// The member `key` of object `obj`: the last one, as JSON readers resolve duplicates. `None`
    /// when `obj` is no object, has no such member, or sanitization removed it.
    pub fn get(&self, obj: NodeId, key: &str) -> Option<NodeId> {
        let [found] = self.lookup(obj, [key]);
        found
    }

    /// [`Self::get`] for several keys in one pass over `obj`'s members.
    pub fn lookup<const N: usize>(&self, obj: NodeId, keys: [&str; N]) -> [Option<NodeId>; N] {
        let mut found = [None; N];
        if self.kind(obj) != Kind::Object {
            return found;
        }
        for c in self.children(obj) {
            let key = self.key(c);
            if let Some(i) = keys.iter().position(|k| same_bytes(k.as_bytes(), key)) {
                found[i] = Some(c);
            }
        }
        found.map(|f| f.filter(|&c| !self.has(c, REMOVED)))
    }

    /// The string member `key` of `obj`.
    pub fn get_str(&self, obj: NodeId, key: &str) -> Option<&str> {
        self.get(obj, key).and_then(|c| self.str(c))
    }

    /// Follows object members from the root.
    pub fn path(&self, keys: &[&str]) -> Option<NodeId> {
        keys.iter()
            .try_fold(Self::ROOT, |node, key| self.get(node, key))
    }

    /// Whether `obj` has a member left after sanitization: one not removed and not superseded by a
    /// later duplicate of its key.
    pub fn has_members(&self, obj: NodeId) -> bool {
        let end = self.nodes[obj as usize].end;
        self.children(obj).any(|c| {
            let key = self.key(c);
            let later = Children {
                doc: self,
                next: self.nodes[c as usize].end,
                end,
            };
            !self.has(c, REMOVED) && !later.into_iter().any(|d| same_bytes(self.key(d), key))
        })
    }

    /// Whether `id` is the string `s` (compared as bytes, without a UTF-8 check).
    pub fn str_is(&self, id: NodeId, s: &str) -> bool {
        self.kind(id) == Kind::String && same_bytes(self.str_bytes(id), s.as_bytes())
    }

    /// One past the last node of `id`'s subtree: its next sibling, if it has one.
    pub(crate) fn subtree_end(&self, id: NodeId) -> NodeId {
        self.nodes[id as usize].end
    }

    /// Marks `id` (as removed or redacted). The value and every container around it are no longer
    /// their canonical text.
    pub(crate) fn mark(&mut self, id: NodeId, flag: u8) {
        self.nodes[id as usize].flags |= flag;
        let mut at = Self::ROOT;
        loop {
            self.nodes[at as usize].flags &= !CANONICAL;
            if at == id {
                break;
            }
            // Down into the child whose subtree holds `id`: siblings are skipped by their ends.
            at += 1;
            while self.nodes[at as usize].end <= id {
                at = self.nodes[at as usize].end;
            }
        }
    }

    /// [`Self::mark`] for a member (or element) `id` of `parent`. Containers around a value that is
    /// not canonical are not canonical either, so when `parent` is not, only `id` changes: no walk
    /// from the root. Sanitization marks members of `metadata`, which Go writes in field order.
    pub(crate) fn mark_member(&mut self, parent: NodeId, id: NodeId, flag: u8) {
        invariant!(
            self.children(parent).any(|c| c == id),
            "{id} is a child of {parent}"
        );
        if self.has(parent, CANONICAL) {
            self.mark(id, flag);
        } else {
            let n = &mut self.nodes[id as usize];
            n.flags = (n.flags | flag) & !CANONICAL;
        }
    }

    pub(crate) fn has(&self, id: NodeId, flag: u8) -> bool {
        self.nodes[id as usize].flags & flag != 0
    }
}

/// Iterator over a node's children.
pub struct Children<'d, 's> {
    doc: &'d Doc<'s>,
    next: NodeId,
    end: NodeId,
}

impl Iterator for Children<'_, '_> {
    type Item = NodeId;

    fn next(&mut self) -> Option<NodeId> {
        (self.next < self.end).then(|| {
            let id = self.next;
            self.next = self.doc.nodes[id as usize].end;
            id
        })
    }
}

/// Whether `a` sorts strictly before `b`, byte by byte. Keys are short and usually differ early:
/// a plain loop beats a call to `memcmp`, which the slice comparison makes.
fn before(a: &[u8], b: &[u8]) -> bool {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x < y;
        }
    }
    a.len() < b.len()
}

/// Whether a number's text is its canonical form: an integer of at most 18 digits (exact in both
/// i64 and f64) without a leading zero, and not `-0`. Other numbers are rewritten (see
/// `canonical::write_number`).
pub(crate) fn is_plain_integer(raw: &[u8]) -> bool {
    let digits = raw.strip_prefix(b"-").unwrap_or(raw);
    !digits.is_empty()
        && digits.len() <= 18
        && digits.iter().all(u8::is_ascii_digit)
        && (digits == b"0" || digits[0] != b'0')
        && raw != b"-0"
}

/// Bytes a JSON string cannot hold as they are: the quote, the backslash and the control characters.
/// They end the parser's fast scan of a string, and writers escape them.
pub(crate) const STRING_STOP: [bool; 256] = {
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

/// The high bit of each byte of `w` (little-endian) that may be `"`, `\\` or below 0x20: the "has
/// zero / has less" bit tests. Any flag means a stop byte exists, and the lowest flag is exact
/// (a borrow can only flag bytes above a true one).
fn string_stops(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_in = |v: u64| v.wrapping_sub(ONES) & !v;
    let quote = w ^ (ONES * b'"' as u64);
    let backslash = w ^ (ONES * b'\\' as u64);
    let control = w.wrapping_sub(ONES * 0x20) & !w;
    (zero_in(quote) | zero_in(backslash) | control) & HIGH
}

/// Whether every byte of `b` is below 0x80. The words are OR-ed without early exit, which the
/// compiler vectorizes; the standard library's check stops to branch on every word.
fn is_ascii(b: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let words = b.chunks_exact(8);
    let tail = words.remainder().iter().fold(0u8, |a, &x| a | x);
    let all = words.fold(0u64, |a, w| {
        a | u64::from_le_bytes(w.try_into().expect("eight bytes"))
    });
    all & HIGH == 0 && tail < 0x80
}

struct Parser<'s> {
    src: &'s [u8],
    pos: usize,
    nodes: Vec<Node>,
    text: Vec<u8>,
    /// How many runs of whitespace were skipped: a container whose count did not move is compact.
    spaced: u32,
    /// Why reading stopped, once it has.
    failure: Option<JsonError>,
}

/// A step of the reader: `Err(Stop)` once it failed, the reason kept in [`Parser::failure`]. A
/// zero-sized error keeps every step's result in registers (a `JsonError` is returned through
/// memory), and the reader returns one for each of the dozens of values in an object.
type Step<T> = Result<T, Stop>;

struct Stop;

impl Parser<'_> {
    fn err<T>(&mut self, what: &'static str) -> Step<T> {
        self.failure = Some(JsonError { what, at: self.pos });
        Err(Stop)
    }

    fn document(&mut self) -> Step<()> {
        if self.src.len() >= u32::MAX as usize {
            return self.err("text longer than 4 GiB");
        }
        // Kubernetes objects are nearly always pure ASCII: prove that in one vectorized pass and
        // run the full UTF-8 check only on text that has a byte above 0x7f.
        if !is_ascii(self.src) {
            if let Err(e) = std::str::from_utf8(self.src) {
                self.pos = e.valid_up_to();
                return self.err("not UTF-8");
            }
        }
        self.skip_ws();
        self.value(Span::default(), 0, 0)?;
        self.skip_ws();
        if self.pos != self.src.len() {
            return self.err("trailing characters");
        }
        Ok(())
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        if let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.spaced += 1;
            while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
                self.pos += 1;
            }
        }
    }

    fn expect(&mut self, b: u8, what: &'static str) -> Step<()> {
        if self.peek() != Some(b) {
            return self.err(what);
        }
        self.pos += 1;
        Ok(())
    }

    fn push(&mut self, kind: Kind, flags: u8, key: Span, val: Span) -> usize {
        let id = self.nodes.len();
        self.nodes.push(Node {
            kind,
            flags,
            key,
            val,
            end: id as NodeId + 1,
        });
        id
    }

    fn span_from(&self, start: usize) -> Span {
        Span {
            start: start as u32,
            len: (self.pos - start) as u32,
        }
    }

    fn value(&mut self, key: Span, key_flags: u8, depth: usize) -> Step<()> {
        let start = self.pos;
        match self.peek() {
            Some(b'{') | Some(b'[') if depth >= DEPTH_MAX => {
                self.err("nesting deeper than 128 levels")
            }
            Some(b'{') => {
                let id = self.push(Kind::Object, key_flags, key, Span::default());
                let spaced = self.spaced;
                let mut canonical = true;
                let mut prev: Option<Span> = None;
                self.container(b'}', "expected `,` or `}`", |p| {
                    match p.peek() {
                        Some(b'"') => {}
                        None => return p.err("unexpected end"),
                        _ => return p.err("expected a key"),
                    }
                    let (k, decoded) = p.string()?;
                    p.skip_ws();
                    p.expect(b':', "expected `:`")?;
                    p.skip_ws();
                    let flags = if decoded { KEY_DECODED } else { 0 };
                    let child = p.nodes.len();
                    p.value(k, flags, depth + 1)?;
                    canonical = canonical
                        && !decoded
                        && p.nodes[child].flags & CANONICAL != 0
                        && prev.is_none_or(|prev| before(&p.src[prev.range()], &p.src[k.range()]));
                    prev = Some(k);
                    Ok(())
                })?;
                self.close(id, start, canonical && spaced == self.spaced);
                Ok(())
            }
            Some(b'[') => {
                let id = self.push(Kind::Array, key_flags, key, Span::default());
                let spaced = self.spaced;
                let mut canonical = true;
                self.container(b']', "expected `,` or `]`", |p| {
                    let child = p.nodes.len();
                    p.value(Span::default(), 0, depth + 1)?;
                    canonical &= p.nodes[child].flags & CANONICAL != 0;
                    Ok(())
                })?;
                self.close(id, start, canonical && spaced == self.spaced);
                Ok(())
            }
            Some(b'"') => {
                let (val, decoded) = self.string()?;
                let flags = key_flags | if decoded { VAL_DECODED } else { CANONICAL };
                self.push(Kind::String, flags, key, val);
                Ok(())
            }
            Some(b't') => self.literal(b"true", Kind::Bool, key, key_flags),
            Some(b'f') => self.literal(b"false", Kind::Bool, key, key_flags),
            Some(b'n') => self.literal(b"null", Kind::Null, key, key_flags),
            Some(b'-' | b'0'..=b'9') => {
                self.number()?;
                let val = self.span_from(start);
                let plain = is_plain_integer(&self.src[val.range()]);
                let flags = key_flags | if plain { CANONICAL } else { 0 };
                self.push(Kind::Number, flags, key, val);
                Ok(())
            }
            None => self.err("unexpected end"),
            Some(_) => self.err("expected a value"),
        }
    }

    /// The body of an object or array, from its opening byte to `close`: `item` reads one member
    /// or element, and items are separated by commas.
    fn container(
        &mut self,
        close: u8,
        expected: &'static str,
        mut item: impl FnMut(&mut Self) -> Step<()>,
    ) -> Step<()> {
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            return Ok(());
        }
        loop {
            item(self)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                }
                Some(b) if b == close => {
                    self.pos += 1;
                    return Ok(());
                }
                None => return self.err("unexpected end"),
                _ => return self.err(expected),
            }
        }
    }

    fn close(&mut self, id: usize, start: usize, canonical: bool) {
        let val = self.span_from(start);
        let end = self.nodes.len() as NodeId;
        let n = &mut self.nodes[id];
        n.val = val;
        n.end = end;
        if canonical {
            n.flags |= CANONICAL;
        }
    }

    fn literal(&mut self, word: &'static [u8], kind: Kind, key: Span, key_flags: u8) -> Step<()> {
        if !self.src[self.pos..].starts_with(word) {
            return self.err("expected a value");
        }
        let start = self.pos;
        self.pos += word.len();
        let val = self.span_from(start);
        self.push(kind, key_flags | CANONICAL, key, val);
        Ok(())
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Step<()> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return self.err("invalid number"),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return self.err("invalid number");
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return self.err("invalid number");
            }
        }
        Ok(())
    }

    /// Reads a string starting at its opening quote; returns its text's span and whether the span
    /// is in the side buffer (the string had escapes).
    #[inline(always)]
    fn string(&mut self) -> Step<(Span, bool)> {
        self.pos += 1;
        let start = self.pos;
        // Eight bytes at a time: the lowest flagged byte of a word is exactly the first stop byte.
        let src = self.src;
        let mut pos = start;
        loop {
            let Some(word) = src.get(pos..pos + 8) else {
                // Fewer than eight bytes left: byte by byte.
                while src.get(pos).is_some_and(|&b| !STRING_STOP[b as usize]) {
                    pos += 1;
                }
                break;
            };
            let stops = string_stops(u64::from_le_bytes(word.try_into().expect("eight bytes")));
            if stops != 0 {
                pos += stops.trailing_zeros() as usize / 8;
                break;
            }
            pos += 8;
        }
        self.pos = pos;
        match src.get(pos) {
            Some(b'"') => {
                let span = self.span_from(start);
                self.pos += 1;
                Ok((span, false))
            }
            Some(b'\\') => self.escaped_string(start).map(|s| (s, true)),
            Some(_) => self.err("control character in string"),
            None => self.err("unterminated string"),
        }
    }

    /// The slow path of [`Self::string`]: decodes into the side buffer.
    fn escaped_string(&mut self, start: usize) -> Step<Span> {
        let text_start = self.text.len();
        self.text.extend_from_slice(&self.src[start..self.pos]);
        loop {
            let Some(&b) = self.src.get(self.pos) else {
                return self.err("unterminated string");
            };
            self.pos += 1;
            match b {
                b'"' => {
                    return Ok(Span {
                        start: text_start as u32,
                        len: (self.text.len() - text_start) as u32,
                    })
                }
                b'\\' => {
                    let Some(&e) = self.src.get(self.pos) else {
                        return self.err("unterminated string");
                    };
                    self.pos += 1;
                    let decoded = match e {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'/' => b'/',
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'u' => {
                            let c = self.unicode_escape()?;
                            let mut buf = [0u8; 4];
                            self.text
                                .extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                            continue;
                        }
                        _ => {
                            self.pos -= 1;
                            return self.err("invalid escape");
                        }
                    };
                    self.text.push(decoded);
                }
                b if b < 0x20 => {
                    self.pos -= 1;
                    return self.err("control character in string");
                }
                b => self.text.push(b),
            }
        }
    }

    fn hex4(&mut self) -> Step<u32> {
        let Some(digits) = self.src.get(self.pos..self.pos + 4) else {
            return self.err("invalid \\u escape");
        };
        let mut v = 0;
        for &d in digits {
            let Some(x) = (d as char).to_digit(16) else {
                return self.err("invalid \\u escape");
            };
            v = v * 16 + x;
        }
        self.pos += 4;
        Ok(v)
    }

    /// After `\u`: one code point, joining a surrogate pair.
    fn unicode_escape(&mut self) -> Step<char> {
        let hi = self.hex4()?;
        let code = match hi {
            0xD800..=0xDBFF => {
                if !self.src[self.pos..].starts_with(b"\\u") {
                    return self.err("lone surrogate in \\u escape");
                }
                self.pos += 2;
                let lo = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&lo) {
                    return self.err("lone surrogate in \\u escape");
                }
                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
            }
            0xDC00..=0xDFFF => return self.err("lone surrogate in \\u escape"),
            c => c,
        };
        char::from_u32(code).map_or_else(|| self.err("invalid \\u escape"), Ok)
    }
}

/// Byte equality for keys and short strings, without a call: most keys compared differ in
/// length or in their first or last bytes, and the C library's `memcmp` behind `==` cost more
/// than that (a twelfth of a Deployment's watch event, most of it in lookups by key).
#[inline]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8 bytes"));
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().expect("4 bytes"));
    match n {
        // The first and the last eight bytes (overlapping below 16) decide; longer keys compare
        // their middle too.
        8.. => {
            word(a, 0) == word(b, 0)
                && word(a, n - 8) == word(b, n - 8)
                && (n <= 16 || a[8..n - 8] == b[8..n - 8])
        }
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        _ => (0..n).all(|i| a[i] == b[i]),
    }
}

#[cfg(test)]
impl Doc<'_> {
    /// Drops every canonical flag, so that the canonical writer takes its member-by-member path.
    pub(crate) fn forget_canonical(&mut self) {
        for n in &mut self.nodes {
            n.flags &= !CANONICAL;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn same_bytes_agrees_with_the_standard_library_at_every_length_and_position() {
        for n in 0..40usize {
            let a: Vec<u8> = (0..n as u8).map(|i| b'a' + i % 26).collect();
            assert!(same_bytes(&a, &a.clone()), "length {n}");
            for at in 0..n {
                let mut b = a.clone();
                b[at] ^= 0x20;
                assert!(!same_bytes(&a, &b), "length {n}, byte {at} differs");
            }
            let longer = [a.as_slice(), b"x"].concat();
            assert!(!same_bytes(&a, &longer) && !same_bytes(&longer, &a));
        }
    }
    use serde_json::json;

    /// Rebuilds a `Value` from the tree: the reference for what the tree holds.
    fn to_value(doc: &Doc, id: NodeId) -> Value {
        match doc.kind(id) {
            Kind::Null => Value::Null,
            Kind::Bool => Value::Bool(doc.is_true(id)),
            Kind::Number => serde_json::from_slice(doc.raw(id)).unwrap(),
            Kind::String => Value::String(doc.str(id).unwrap().to_owned()),
            Kind::Array => Value::Array(doc.children(id).map(|c| to_value(doc, c)).collect()),
            Kind::Object => Value::Object(
                doc.children(id)
                    .map(|c| {
                        (
                            String::from_utf8(doc.key(c).to_vec()).unwrap(),
                            to_value(doc, c),
                        )
                    })
                    .collect(),
            ),
        }
    }

    fn parses_like_serde(text: &str) {
        let ours = Doc::parse(text.as_bytes());
        let theirs: Result<Value, _> = serde_json::from_str(text);
        match (ours, theirs) {
            (Ok(doc), Ok(v)) => assert_eq!(to_value(&doc, Doc::ROOT), v, "text {text:?}"),
            (Err(_), Err(_)) => {}
            (ours, theirs) => panic!("text {text:?}: ours {ours:?}, serde_json {theirs:?}"),
        }
    }

    #[test]
    fn an_error_in_a_string_names_the_offending_byte() {
        // `{"k":"ab\q"}`: the bad escape's letter is at offset 9; the control character in
        // `{"k":"a\n<TAB>"}` (after a valid escape) at offset 9.
        let bad_escape = Doc::parse(br#"{"k":"ab\q"}"#).unwrap_err();
        assert_eq!((bad_escape.what, bad_escape.at), ("invalid escape", 9));
        let control = Doc::parse(b"{\"k\":\"a\\n\t\"}").unwrap_err();
        assert_eq!(
            (control.what, control.at),
            ("control character in string", 9)
        );
    }

    #[test]
    fn the_ascii_check_agrees_with_the_standard_library_at_every_length_and_position() {
        let base: Vec<u8> = (0..40).map(|i| b'a' + (i % 26) as u8).collect();
        for len in 0..base.len() {
            assert!(is_ascii(&base[..len]));
            for at in 0..len {
                for high in [0x80u8, 0xc3, 0xff] {
                    let mut t = base[..len].to_vec();
                    t[at] = high;
                    assert_eq!(is_ascii(&t), t.is_ascii(), "len {len} at {at}");
                    assert!(!is_ascii(&t));
                }
            }
        }
        // Two high bytes in the tail (one two-byte character) are still seen.
        for len in 2..8 {
            let mut t = base[..len].to_vec();
            t[len - 2..].copy_from_slice("é".as_bytes());
            assert!(!is_ascii(&t), "len {len}");
        }
        // Non-ASCII text is still checked in full.
        assert!(Doc::parse("\"é\"".as_bytes()).is_ok());
        assert_eq!(Doc::parse(b"[\"\xff\"]").unwrap_err().what, "not UTF-8");
    }

    #[test]
    fn an_object_has_members_when_one_is_neither_removed_nor_superseded() {
        let mut doc = Doc::parse(br#"{"o":{"a":1,"b":2,"a":3},"e":{}}"#).unwrap();
        let [o, e] = doc.lookup(Doc::ROOT, ["o", "e"]).map(Option::unwrap);
        assert!(doc.has_members(o) && !doc.has_members(e));
        let members: Vec<NodeId> = doc.children(o).collect();
        // The last `a` and `b` removed: the first `a` is superseded, so nothing is left.
        doc.mark(members[2], REMOVED);
        doc.mark(members[1], REMOVED);
        assert!(!doc.has_members(o));
        // A superseded duplicate being removed changes nothing.
        let mut doc = Doc::parse(br#"{"a":1,"a":2}"#).unwrap();
        let first = doc.children(Doc::ROOT).next().unwrap();
        doc.mark(first, REMOVED);
        assert!(doc.has_members(Doc::ROOT));
        // `str_is` compares strings only.
        let a = doc.get(Doc::ROOT, "a").unwrap();
        assert!(!doc.str_is(a, "2") && doc.raw(a) == b"2");
    }

    #[test]
    fn reads_what_serde_json_reads() {
        for text in [
            r#"{"apiVersion":"v1","metadata":{"name":"a","labels":{}},"data":{"k":"v"}}"#,
            " [1, -2.5e3, 0, -0, 1E+2, true, false, null, \"\", {}, []] ",
            r#"{"esc":"q\"b\\s\/n\nt\tu\u00e9\ud83d\ude00","k\u0041":"x"}"#,
            r#""plain""#,
            "12345678901234567890123",
        ] {
            parses_like_serde(text);
        }
    }

    #[test]
    fn refuses_what_is_not_json() {
        for text in [
            "",
            "{",
            "{\"a\"}",
            "{\"a\":1,}",
            "[1,]",
            "[1 2]",
            "01",
            "1.",
            "-",
            "1e",
            ".5",
            "tru",
            "nul",
            "\"a",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\ud800\"",
            "\"\\udc00x\"",
            "\"\\ud800\\u0041\"",
            "\"tab\tinside\"",
            "{} {}",
            "{'a':1}",
            "[1]x",
        ] {
            let e = Doc::parse(text.as_bytes()).expect_err(text);
            assert!(serde_json::from_str::<Value>(text).is_err(), "{text:?}");
            assert!(e.at <= text.len(), "{text:?}: {e}");
        }
        assert_eq!(
            Doc::parse(b"{\"a\":\"\xff\"}").unwrap_err(),
            JsonError {
                what: "not UTF-8",
                at: 6
            }
        );
    }

    #[test]
    fn the_word_scan_finds_every_stop_byte_and_nothing_else() {
        for b in 0..=255u8 {
            for at in 0..8 {
                let mut word = [b'a'; 8];
                word[at] = b;
                let stop = b == b'"' || b == b'\\' || b < 0x20;
                let flags = string_stops(u64::from_le_bytes(word));
                assert_eq!(flags != 0, stop, "{b:#x} at {at}");
                if stop {
                    assert_eq!(flags.trailing_zeros() as usize / 8, at, "{b:#x} at {at}");
                }
            }
        }
        // Neighbouring high bytes must not borrow a false positive.
        assert_eq!(
            string_stops(u64::from_le_bytes(*b"\xff\x80\xc3\xa9 !#~")),
            0
        );
        // Two stops: the lowest flag is the first.
        let flags = string_stops(u64::from_le_bytes(*b"ab\x01\"cdef"));
        assert_eq!(flags.trailing_zeros() / 8, 2);
    }

    #[test]
    fn deep_nesting_is_refused_not_recursed() {
        let deep = "[".repeat(100_000);
        let e = Doc::parse(deep.as_bytes()).unwrap_err();
        assert_eq!(e.what, "nesting deeper than 128 levels");
        let ok = format!("{}{}", "[".repeat(DEPTH_MAX), "]".repeat(DEPTH_MAX));
        assert!(Doc::parse(ok.as_bytes()).is_ok());
    }

    #[test]
    fn get_resolves_duplicate_keys_to_the_last_like_serde_json() {
        let text = r#"{"a":1,"b":{"c":"x"},"a":2}"#;
        let doc = Doc::parse(text.as_bytes()).unwrap();
        assert_eq!(doc.raw(doc.get(Doc::ROOT, "a").unwrap()), b"2");
        assert_eq!(doc.path(&["b", "c"]).and_then(|c| doc.str(c)), Some("x"));
        assert_eq!(doc.path(&["b", "d"]), None);
        assert_eq!(doc.path(&["a", "c"]), None);
    }

    #[test]
    fn buffers_are_reused_across_parses() {
        let first = Doc::parse(br#"{"a":"\n","b":[1,2,3]}"#).unwrap();
        let scratch = first.recycle();
        let (nodes_cap, text_cap) = (scratch.nodes.capacity(), scratch.text.capacity());
        let second = Doc::parse_in(br#"{"x":"\t"}"#, scratch).unwrap();
        assert_eq!(second.str(1), Some("\t"));
        let scratch = second.recycle();
        assert_eq!(
            (scratch.nodes.capacity(), scratch.text.capacity()),
            (nodes_cap, text_cap)
        );
    }

    pub(crate) fn random_value(rng: &mut ChaCha8Rng, depth: usize) -> Value {
        let alphabet: Vec<char> = "ab Z0_-./\"\\\t\n\r\u{1}\u{7f}é\u{2028}\u{10348}"
            .chars()
            .collect();
        let s = |rng: &mut ChaCha8Rng| -> String {
            (0..rng.gen_range(0..6))
                .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
                .collect()
        };
        match rng.gen_range(0..if depth > 3 { 5 } else { 8 }) {
            0 => Value::Null,
            1 => Value::Bool(rng.gen()),
            2 => json!(rng.gen::<i64>()),
            3 => json!(rng.gen::<f64>() * 1e6),
            4 => Value::String(s(rng)),
            5 | 6 => Value::Object(
                (0..rng.gen_range(0..5))
                    .map(|_| (s(rng), random_value(rng, depth + 1)))
                    .collect(),
            ),
            _ => Value::Array(
                (0..rng.gen_range(0..5))
                    .map(|_| random_value(rng, depth + 1))
                    .collect(),
            ),
        }
    }

    /// Recorded objects with random byte edits: the tree accepts exactly what serde_json accepts
    /// (bar numbers beyond f64, which serde_json refuses and we keep as text), reads the same
    /// value, and nothing downstream panics on what it accepts.
    #[test]
    fn mutated_objects_are_read_or_refused_like_serde_json_and_never_panic() {
        let lines: Vec<&str> = [
            include_str!("../tests/fixtures/kube-apiserver-1.20/watch-configmaps.jsonl"),
            include_str!("../tests/fixtures/kube-apiserver-1.20/watch-deployments.jsonl"),
            include_str!("../tests/fixtures/kube-apiserver-1.20/admission.jsonl"),
        ]
        .iter()
        .flat_map(|f| f.lines())
        .collect();
        let specials = b"{}[]\",:\\u0123456789eE+-.tfn \t\n\x00\x1f\x7f\xc3\xa9\xff";
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..20_000 {
            let mut text = lines[rng.gen_range(0..lines.len())].as_bytes().to_vec();
            for _ in 0..rng.gen_range(1..4) {
                let at = rng.gen_range(0..text.len());
                let b = specials[rng.gen_range(0..specials.len())];
                match rng.gen_range(0..3) {
                    0 => text[at] = b,
                    1 => text.insert(at, b),
                    _ => {
                        text.remove(at);
                    }
                }
            }
            let theirs = serde_json::from_slice::<Value>(&text);
            match Doc::parse(&text) {
                Ok(mut doc) => {
                    accepted += 1;
                    if let Ok(v) = theirs {
                        assert_eq!(to_value(&doc, Doc::ROOT), v);
                    } else {
                        let e = theirs.unwrap_err().to_string();
                        assert!(e.contains("out of range"), "serde_json refused: {e}");
                    }
                    crate::sanitize::sanitize(&mut doc, crate::sanitize::TypeRules::Secret);
                    let mut out = Vec::new();
                    crate::canonical::write_canonical(&doc, &mut out, &mut Default::default());
                    crate::yaml::render_doc(&doc);
                }
                Err(e) => {
                    refused += 1;
                    assert!(theirs.is_err(), "serde_json read what we refused ({e})");
                    assert!(e.at <= text.len());
                }
            }
        }
        assert!(
            accepted > 1000 && refused > 1000,
            "{accepted} accepted, {refused} refused"
        );
    }

    #[test]
    fn only_compact_sorted_escape_free_integer_values_are_flagged_canonical() {
        let text = r#"{"z":0,"ok":{"a":1,"b":[true,null,"x",{}],"c":{"d":-12}},"spaced":{"a": 1},
            "unsorted":{"b":1,"a":2},"twice":{"a":1,"a":2},"float":{"a":1.5},"exp":[1e2],
            "minus_zero":[-0],"long":[1234567890123456789],"escaped_value":{"a":"\n"},
            "escaped_key":{"\u0061":1},"deep":{"a":{"b":[{"c":"x y"}]}},"deep_bad":{"a":{"b":[{"c":1.0}]}}}"#;
        let doc = Doc::parse(text.as_bytes()).unwrap();
        let flagged: Vec<_> = doc
            .children(Doc::ROOT)
            .filter(|&c| doc.has(c, CANONICAL))
            .map(|c| std::str::from_utf8(doc.key(c)).unwrap())
            .collect();
        assert_eq!(flagged, ["z", "ok", "deep"]);
        // The root is spaced (a newline between members), so it is not.
        assert!(!doc.has(Doc::ROOT, CANONICAL));
        assert!(Doc::parse(br#"{"a":[],"b":{}}"#)
            .unwrap()
            .has(Doc::ROOT, CANONICAL));
    }

    #[test]
    fn marking_a_value_unflags_it_and_every_container_around_it_and_nothing_else() {
        let mut doc =
            Doc::parse(br#"{"a":{"b":{"c":[1,{"d":"x","e":"y"}],"f":{"g":1}},"h":{"i":2}}}"#)
                .unwrap();
        let node = |doc: &Doc, path: &[&str]| doc.path(path).unwrap();
        let d_parent = doc.children(node(&doc, &["a", "b", "c"])).nth(1).unwrap();
        let d = doc.get(d_parent, "d").unwrap();
        doc.mark(d, REMOVED);
        for (unflagged, id) in [
            (true, Doc::ROOT),
            (true, node(&doc, &["a"])),
            (true, node(&doc, &["a", "b"])),
            (true, node(&doc, &["a", "b", "c"])),
            (true, d_parent),
            (true, d),
            (false, doc.get(d_parent, "e").unwrap()),
            (false, node(&doc, &["a", "b", "f"])),
            (false, node(&doc, &["a", "h"])),
        ] {
            assert_eq!(!doc.has(id, CANONICAL), unflagged, "node {id}");
        }
    }

    /// `mark_member` skips the walk from the root when it can: the flags must come out as `mark`
    /// leaves them, whichever members are marked in whatever order.
    #[test]
    fn marking_a_member_flags_the_document_as_marking_it_from_the_root_does() {
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        let (mut walked, mut skipped) = (0, 0);
        for _ in 0..4000 {
            let text = serde_json::to_string(&random_value(&mut rng, 0)).unwrap();
            let (mut a, mut b) = (
                Doc::parse(text.as_bytes()).unwrap(),
                Doc::parse(text.as_bytes()).unwrap(),
            );
            let n = a.subtree_end(Doc::ROOT);
            for _ in 0..3 {
                let parent = rng.gen_range(0..n);
                let Some(child) = a.children(parent).nth(rng.gen_range(0..4)) else {
                    continue;
                };
                if a.has(parent, CANONICAL) {
                    walked += 1;
                } else {
                    skipped += 1;
                }
                a.mark(child, REMOVED);
                b.mark_member(parent, child, REMOVED);
                let flags = |d: &Doc| {
                    (0..n)
                        .map(|id| d.nodes[id as usize].flags)
                        .collect::<Vec<_>>()
                };
                assert_eq!(
                    flags(&a),
                    flags(&b),
                    "text {text}, marked {child} of {parent}"
                );
            }
        }
        assert!(
            walked > 30 && skipped > 30,
            "{walked} walked, {skipped} skipped"
        );
    }

    #[test]
    fn random_documents_read_back_exactly() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for _ in 0..3000 {
            let v = random_value(&mut rng, 0);
            let compact = serde_json::to_string(&v).unwrap();
            let pretty = serde_json::to_string_pretty(&v).unwrap();
            for text in [compact, pretty] {
                // Compared with serde_json's reading of the text, not with `v`: without its
                // `float_roundtrip` feature serde_json reads some floats one ulp off.
                let doc = Doc::parse(text.as_bytes()).unwrap();
                let expected: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(to_value(&doc, Doc::ROOT), expected, "text {text}");
            }
        }
    }
}
