//! The input-recording format: every `(now, input)` a driver handed the core, as JSON lines.
//!
//! The core is deterministic, so a recording replays a production run exactly. The first line is
//! a [`Header`] (format name, version, the [`CoreConfig`]); every later line is one [`Entry`], or
//! (since version 2) another header: the process restarted there, a fresh core was built from that
//! header's configuration, and the remotes kept what had landed. Objects are kept as their exact
//! JSON text (a JSON string), blob ids as hex.
//!
//! ```text
//! {"format":"gitops-reverser-inputs","version":1,"config":{...}}
//! {"now":{"mono_ms":0,"wall_ms":1764619200000},"input":{"ApiResources":[...]}}
//! {"now":{"mono_ms":12,"wall_ms":1764619200012},"input":"Tick"}
//! ```

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::core::CoreConfig;
use crate::io::Input;
use crate::time::Now;

/// The `format` field of every recording's header.
pub const FORMAT: &str = "gitops-reverser-inputs";
/// The format version this build writes.
pub const VERSION: u32 = 2;
/// The oldest format version this build reads. Version 1 is version 2 without restarts.
pub const VERSION_MIN: u32 = 1;

/// The first line of a recording.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Always [`FORMAT`].
    pub format: String,
    /// The format version.
    pub version: u32,
    /// The configuration the core was built with.
    pub config: CoreConfig,
}

impl Header {
    /// The header of a recording made now, by this build.
    pub fn new(config: CoreConfig) -> Self {
        Self {
            format: FORMAT.into(),
            version: VERSION,
            config,
        }
    }
}

/// One input at one instant.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    /// When the driver handed the input over.
    pub now: Now,
    /// The input.
    pub input: Input,
}

/// Why a recording, or one of its lines, cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RecordError {
    /// The file is empty.
    #[error("the recording is empty: its first line must be a {FORMAT} header")]
    Empty,
    /// The first line is not a header of this format.
    #[error("line 1 is not a {FORMAT} header: {0}")]
    NotARecording(String),
    /// Written by a format version this build does not read.
    #[error(
        "unsupported format version {found}, this build reads versions {VERSION_MIN} to {VERSION}"
    )]
    UnsupportedVersion {
        /// The version in the header.
        found: u32,
    },
    /// A line after the header is truncated or corrupt.
    #[error("line {line}: {reason}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// The header line (without its newline).
pub fn header_line(config: &CoreConfig) -> String {
    serde_json::to_string(&Header::new(config.clone())).expect("a header always serializes")
}

/// One entry line (without its newline). Fails only for an object whose text is not UTF-8.
pub fn entry_line(now: Now, input: &Input) -> Result<String, serde_json::Error> {
    #[derive(Serialize)]
    struct EntryRef<'a> {
        now: Now,
        input: &'a Input,
    }
    serde_json::to_string(&EntryRef { now, input })
}

/// A restart inside a recording: before entry `at`, a fresh core was built from `config`.
#[derive(Clone, Debug)]
pub struct Restart {
    /// Index into [`Recording::entries`] of the first entry the new core saw.
    pub at: usize,
    /// Its configuration.
    pub config: CoreConfig,
}

/// A recording read back: the header, every entry that could be read, the restarts, and the
/// lines that could not be read (each reported with its number; a bad line loses only itself).
#[derive(Clone, Debug)]
pub struct Recording {
    /// The header.
    pub header: Header,
    /// Entries in order.
    pub entries: Vec<Entry>,
    /// Restarts, in order of `at`.
    pub restarts: Vec<Restart>,
    /// Lines that could not be read.
    pub bad_lines: Vec<RecordError>,
}

impl Recording {
    /// The whole recording as text in this build's version: what [`read`] reads back.
    pub fn to_text(&self) -> Result<String, serde_json::Error> {
        let mut out = header_line(&self.header.config);
        out.push('\n');
        let mut restarts = self.restarts.iter().peekable();
        for (i, e) in self.entries.iter().enumerate() {
            while let Some(r) = restarts.next_if(|r| r.at == i) {
                out.push_str(&header_line(&r.config));
                out.push('\n');
            }
            out.push_str(&entry_line(e.now, &e.input)?);
            out.push('\n');
        }
        for r in restarts {
            out.push_str(&header_line(&r.config));
            out.push('\n');
        }
        Ok(out)
    }
}

/// Reads a whole recording. Blank lines are skipped.
pub fn read(text: &str) -> Result<Recording, RecordError> {
    let mut lines = text.lines().enumerate();
    let (_, first) = lines
        .by_ref()
        .find(|(_, l)| !l.trim().is_empty())
        .ok_or(RecordError::Empty)?;
    let header = read_header(first)?;
    let mut entries = Vec::new();
    let mut restarts = Vec::new();
    let mut bad_lines = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        if header.version >= 2 && line.starts_with("{\"format\"") {
            match read_header(line) {
                Ok(h) => restarts.push(Restart {
                    at: entries.len(),
                    config: h.config,
                }),
                Err(e) => bad_lines.push(RecordError::BadLine {
                    line: i + 1,
                    reason: e.to_string(),
                }),
            }
            continue;
        }
        match serde_json::from_str::<Entry>(line) {
            Ok(e) => entries.push(e),
            Err(e) => bad_lines.push(RecordError::BadLine {
                line: i + 1,
                reason: e.to_string(),
            }),
        }
    }
    Ok(Recording {
        header,
        entries,
        restarts,
        bad_lines,
    })
}

fn read_header(line: &str) -> Result<Header, RecordError> {
    #[derive(Deserialize)]
    struct Probe {
        format: Option<String>,
        version: Option<u32>,
    }
    let probe: Probe =
        serde_json::from_str(line).map_err(|e| RecordError::NotARecording(e.to_string()))?;
    if probe.format.as_deref() != Some(FORMAT) {
        return Err(RecordError::NotARecording(format!(
            "format is {:?}",
            probe.format
        )));
    }
    match probe.version {
        Some(VERSION_MIN..=VERSION) => {}
        Some(found) => return Err(RecordError::UnsupportedVersion { found }),
        None => return Err(RecordError::NotARecording("no version".into())),
    }
    serde_json::from_str(line).map_err(|e| RecordError::NotARecording(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Gvr;
    use crate::io::{GitResult, WatchEvent};

    fn recording(lines: &[String]) -> String {
        let mut text = header_line(&CoreConfig::default());
        for l in lines {
            text.push('\n');
            text.push_str(l);
        }
        text
    }

    #[test]
    fn an_entry_reads_back_with_the_objects_exact_text() {
        let text = br#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"a"},"data":{"k":"v\u00e9"}}"#;
        let input = Input::Watch(
            Gvr::new("", "v1", "configmaps"),
            WatchEvent::Apply(crate::json::RawObject::new(&text[..])),
        );
        let line = entry_line(Now::at(5), &input).unwrap();
        let rec = read(&recording(&[line])).unwrap();
        assert!(rec.bad_lines.is_empty());
        match &rec.entries[0].input {
            Input::Watch(_, WatchEvent::Apply(o)) => assert_eq!(o.as_bytes(), &text[..]),
            other => panic!("read back {other:?}"),
        }
        assert_eq!(rec.entries[0].now, Now::at(5));
    }

    #[test]
    fn blob_ids_are_hex_and_read_back() {
        let id = [0xab; 20];
        let input = Input::GitDone(
            3,
            GitResult::Pushed {
                head: "c1".into(),
                blobs: vec![vec![Some(id), None]],
            },
        );
        let line = entry_line(Now::at(1), &input).unwrap();
        assert!(line.contains(&"ab".repeat(20)), "{line}");
        let rec = read(&recording(&[line])).unwrap();
        match &rec.entries[0].input {
            Input::GitDone(3, GitResult::Pushed { blobs, .. }) => {
                assert_eq!(blobs, &vec![vec![Some(id), None]])
            }
            other => panic!("read back {other:?}"),
        }
    }

    #[test]
    fn another_version_is_refused_by_number() {
        let line = header_line(&CoreConfig::default()).replace("\"version\":2", "\"version\":7");
        assert_eq!(
            read(&line).unwrap_err().to_string(),
            "unsupported format version 7, this build reads versions 1 to 2"
        );
    }

    #[test]
    fn a_version_1_recording_still_reads() {
        let head = header_line(&CoreConfig::default()).replace("\"version\":2", "\"version\":1");
        let text = format!(
            "{head}\n{}\n",
            entry_line(Now::at(1), &Input::Tick).unwrap()
        );
        let rec = read(&text).unwrap();
        assert_eq!((rec.header.version, rec.entries.len()), (1, 1));
        assert!(rec.restarts.is_empty() && rec.bad_lines.is_empty());
    }

    #[test]
    fn a_restart_is_a_header_between_entries_and_writes_back_the_same() {
        let tick = entry_line(Now::at(1), &Input::Tick).unwrap();
        let other = CoreConfig {
            instance_id: 9,
            ..CoreConfig::default()
        };
        let text = format!(
            "{}\n{tick}\n{}\n{tick}\n{tick}\n",
            header_line(&CoreConfig::default()),
            header_line(&other)
        );
        let rec = read(&text).unwrap();
        assert_eq!(rec.entries.len(), 3);
        assert_eq!(rec.restarts.len(), 1);
        assert_eq!(rec.restarts[0].at, 1);
        assert_eq!(rec.restarts[0].config.instance_id, 9);
        assert_eq!(rec.to_text().unwrap(), text);
    }

    #[test]
    fn a_corrupt_line_is_reported_by_number_and_loses_only_itself() {
        let good = entry_line(Now::at(1), &Input::Tick).unwrap();
        let text = recording(&[good.clone(), good[..good.len() - 3].to_string(), good]);
        let rec = read(&text).unwrap();
        assert_eq!(rec.entries.len(), 2);
        assert_eq!(rec.bad_lines.len(), 1);
        assert!(
            matches!(rec.bad_lines[0], RecordError::BadLine { line: 3, .. }),
            "{:?}",
            rec.bad_lines
        );
    }

    #[test]
    fn a_file_that_is_not_a_recording_says_so() {
        assert!(matches!(
            read("{\"hello\":1}"),
            Err(RecordError::NotARecording(_))
        ));
        assert_eq!(read("\n\n").unwrap_err(), RecordError::Empty);
    }
}
