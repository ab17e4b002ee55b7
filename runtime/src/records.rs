//! The admission records a replica's webhook served within the last correlation TTL: kept in
//! memory and appended to a file in the work dir, so that they outlive the core that took them,
//! and a restarted container finds them. When a core starts (a restart, a failover), every
//! replica hands it its window again: a change admitted and watched but not yet pushed keeps its
//! author. The core joins them as it joins any record, never guessing.
//!
//! A record is at most a TTL old when handed again, and the new core keeps it for a TTL from then:
//! a record lives at most twice the TTL, which the core's rules for late and stale records cover
//! (a record made on a version the list shows replaced names nobody).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use gitops_reverser_core::admission::{record_id, AdmissionRequest};
use serde::{Deserialize, Serialize};

/// The window's file in the work dir.
pub const FILE_NAME: &str = "admission-records.jsonl";
/// Records a window holds at most; the oldest go first.
pub const RECORDS_MAX: usize = 20_000;
/// Bytes of records a window holds at most (the objects' JSON); the oldest go first.
pub const BYTES_MAX: usize = 64 * 1024 * 1024;

/// One line of the file: a record, or records the core settled since.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
// Lines are made and read one at a time: the size of the larger variant does not add up.
#[allow(clippy::large_enum_variant)]
enum Line {
    Record {
        /// When the webhook served it, wall-clock milliseconds.
        at_ms: u64,
        request: AdmissionRequest,
    },
    Settled {
        settled: Vec<u64>,
    },
}

/// [`Line::Record`] as written, borrowing its request.
#[derive(Serialize)]
struct RecordLine<'a> {
    at_ms: u64,
    request: &'a AdmissionRequest,
}

struct Entry {
    at_ms: u64,
    bytes: usize,
    /// [`gitops_reverser_core::admission::record_id`] of the request.
    id: u64,
    request: AdmissionRequest,
}

/// One replica's window.
pub struct Window {
    ttl_ms: u64,
    entries: VecDeque<Entry>,
    /// Records settled and still among `entries`: left out when the window is handed on or
    /// written afresh. (Forgetting them one by one would scan the window for every notice, on
    /// the path every record takes.)
    settled: std::collections::HashSet<u64>,
    bytes: usize,
    path: Option<PathBuf>,
    file: Option<File>,
    file_bytes: usize,
}

impl Window {
    /// A window kept in memory only.
    pub fn in_memory(ttl_ms: u64) -> Self {
        Self {
            ttl_ms,
            entries: VecDeque::new(),
            settled: Default::default(),
            bytes: 0,
            path: None,
            file: None,
            file_bytes: 0,
        }
    }

    /// The window of `dir`: the records its file holds that are younger than the TTL at `now_ms`,
    /// the file rewritten with only those. A file that cannot be read or written leaves a
    /// window in memory (logged): attribution after a restart is what is lost, nothing else.
    pub fn open(dir: &Path, ttl_ms: u64, now_ms: u64) -> Self {
        let mut w = Self::in_memory(ttl_ms);
        let _ = std::fs::create_dir_all(dir);
        let path = dir.join(FILE_NAME);
        if let Ok(f) = File::open(&path) {
            for line in BufReader::new(f).lines() {
                let Ok(line) = line else { break };
                // A line cut by a kill mid-write, or garbage: skipped.
                match serde_json::from_str::<Line>(&line) {
                    Ok(Line::Record { at_ms, request }) => w.keep(at_ms, line.len() + 1, request),
                    Ok(Line::Settled { settled }) => w.forget(&settled),
                    Err(_) => {}
                }
            }
        }
        w.expire(now_ms);
        w.path = Some(path);
        if let Err(e) = w.rewrite() {
            tracing::warn!(file = %dir.join(FILE_NAME).display(), "the admission records file cannot be written, records are kept in memory only: {e}");
            w.path = None;
        }
        if !w.entries.is_empty() {
            tracing::info!(
                records = w.entries.len(),
                "admission records of the last TTL found from before the restart"
            );
        }
        w
    }

    fn keep(&mut self, at_ms: u64, bytes: usize, request: AdmissionRequest) {
        self.entries.push_back(Entry {
            at_ms,
            bytes,
            id: record_id(&request),
            request,
        });
        self.bytes += bytes;
        while self.entries.len() > RECORDS_MAX || self.bytes > BYTES_MAX {
            let Some(old) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= old.bytes;
        }
    }

    fn expire(&mut self, now_ms: u64) {
        while let Some(front) = self.entries.front() {
            if front.at_ms.saturating_add(self.ttl_ms) > now_ms {
                break;
            }
            self.bytes -= front.bytes;
            let gone = self.entries.pop_front().expect("looked at");
            self.settled.remove(&gone.id);
        }
    }

    /// Writes the file afresh with the records held.
    fn rewrite(&mut self) -> std::io::Result<()> {
        self.forget_settled();
        let Some(path) = &self.path else {
            return Ok(());
        };
        let tmp = path.with_extension("jsonl.tmp");
        // Owner only: the records hold the objects as the API server sent them, Secrets too.
        let file = {
            use std::os::unix::fs::OpenOptionsExt;
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?
        };
        let mut out = std::io::BufWriter::new(file);
        let mut written = 0;
        for e in &self.entries {
            let mut line = serde_json::to_vec(&RecordLine {
                at_ms: e.at_ms,
                request: &e.request,
            })?;
            line.push(b'\n');
            out.write_all(&line)?;
            written += line.len();
        }
        out.flush()?;
        drop(out);
        std::fs::rename(&tmp, path)?;
        self.file = Some(OpenOptions::new().append(true).open(path)?);
        self.file_bytes = written;
        Ok(())
    }

    /// Keeps `request`, served at `now_ms`, and appends it to the file. The file is rewritten
    /// when it has grown to twice what the window holds.
    pub fn push(&mut self, request: AdmissionRequest, now_ms: u64) {
        let mut line = match serde_json::to_vec(&RecordLine {
            at_ms: now_ms,
            request: &request,
        }) {
            Ok(l) => l,
            Err(_) => return,
        };
        line.push(b'\n');
        self.keep(now_ms, line.len(), request);
        self.expire(now_ms);
        self.append(&line);
    }

    /// Forgets the records the core settled (their commits landed, or it will never use them):
    /// no next core may be handed them.
    pub fn settle(&mut self, ids: &[u64]) {
        self.settled.extend(ids.iter().copied());
        let Ok(mut line) = serde_json::to_vec(&Line::Settled {
            settled: ids.to_vec(),
        }) else {
            return;
        };
        line.push(b'\n');
        self.append(&line);
    }

    fn forget(&mut self, ids: &[u64]) {
        self.settled.extend(ids.iter().copied());
        self.forget_settled();
    }

    fn forget_settled(&mut self) {
        if self.settled.is_empty() {
            return;
        }
        let (settled, mut freed) = (&self.settled, 0);
        self.entries.retain(|e| {
            let keep = !settled.contains(&e.id);
            if !keep {
                freed += e.bytes;
            }
            keep
        });
        self.bytes -= freed;
        self.settled.clear();
    }

    fn append(&mut self, line: &[u8]) {
        if let Some(f) = &mut self.file {
            if let Err(e) = f.write_all(line) {
                tracing::warn!("appending to the admission records file failed; records are kept in memory only: {e}");
                self.file = None;
                self.path = None;
                return;
            }
            self.file_bytes += line.len();
        }
        if self.file_bytes > 2 * self.bytes + 1024 * 1024 {
            if let Err(e) = self.rewrite() {
                tracing::warn!("rewriting the admission records file failed; records are kept in memory only: {e}");
                self.file = None;
                self.path = None;
            }
        }
    }

    /// The records younger than the TTL at `now_ms`, oldest first.
    pub fn current(&mut self, now_ms: u64) -> Vec<AdmissionRequest> {
        self.expire(now_ms);
        self.forget_settled();
        self.entries.iter().map(|e| e.request.clone()).collect()
    }

    /// How many records the window holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the window holds none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Wall-clock milliseconds now.
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitops_reverser_core::{Gvr, Operation};

    fn request(name: &str) -> AdmissionRequest {
        AdmissionRequest {
            uid: format!("req-{name}"),
            gvr: Gvr::new("", "v1", "configmaps"),
            namespace: Some("team-a".into()),
            name: name.into(),
            operation: Operation::Create,
            username: "alice".into(),
            dry_run: false,
            object: Some(serde_json::json!({"metadata": {"name": name}}).into()),
            old_object: None,
            sub_resource: None,
        }
    }

    fn names(w: &mut Window, now_ms: u64) -> Vec<String> {
        w.current(now_ms).into_iter().map(|r| r.name).collect()
    }

    #[test]
    fn a_restarted_window_finds_the_records_of_the_last_ttl_and_drops_older_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Window::open(dir.path(), 60_000, 0);
        w.push(request("old"), 1_000);
        w.push(request("a"), 30_000);
        w.push(request("b"), 50_000);
        drop(w);
        // A line cut by a kill mid-write is skipped.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(FILE_NAME))
            .unwrap();
        f.write_all(b"{\"at_ms\": 5").unwrap();
        let mut again = Window::open(dir.path(), 60_000, 70_000);
        assert_eq!(names(&mut again, 70_000), ["a", "b"]);
        assert_eq!(names(&mut again, 95_000), ["b"]);
        // The file was rewritten with what is current.
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "readable by the operator alone");
    }

    #[test]
    fn a_settled_record_is_forgotten_and_stays_forgotten_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Window::open(dir.path(), 60_000, 0);
        let (a, b) = (request("a"), request("b"));
        w.push(a.clone(), 1_000);
        w.push(b, 2_000);
        w.settle(&[record_id(&a)]);
        assert_eq!(names(&mut w, 3_000), ["b"]);
        drop(w);
        let mut again = Window::open(dir.path(), 60_000, 3_000);
        assert_eq!(names(&mut again, 3_000), ["b"]);
    }

    #[test]
    fn a_window_holds_at_most_its_bound_and_its_file_is_rewritten_as_it_grows() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Window::open(dir.path(), 1_000, 0);
        for i in 0..RECORDS_MAX as u64 + 10 {
            w.push(request(&format!("r{i}")), i / 100);
        }
        assert_eq!(w.len(), RECORDS_MAX);
        // Records a TTL old are gone, and the file keeps no more than twice the window.
        w.push(request("late"), 10_000);
        assert_eq!(names(&mut w, 10_000), ["late"]);
        let size = std::fs::metadata(dir.path().join(FILE_NAME)).unwrap().len();
        assert!(size < 2 * 1024 * 1024, "{size}");
    }
}
