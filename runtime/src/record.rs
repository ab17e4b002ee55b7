//! `--record-inputs`: every core input with its `Now`, in the core's versioned JSON-lines format
//! ([`gitops_reverser_core::record`]). Written by the driver as it hands the input over, through
//! a buffered file flushed after each batch of inputs, so a replay reproduces the run exactly.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use gitops_reverser_core::io::Input;
use gitops_reverser_core::record;
use gitops_reverser_core::CoreConfig;
use gitops_reverser_core::Now;

/// An open recording.
pub(crate) struct Recorder {
    out: BufWriter<File>,
    failed: bool,
}

impl Recorder {
    /// Creates (truncates) `path`, readable by its owner only (it holds every input, Secrets'
    /// data included), and writes the header.
    pub(crate) fn create(path: &Path, config: &CoreConfig) -> std::io::Result<Recorder> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        // A file that existed keeps its mode through `open`: set it.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        let mut out = BufWriter::new(file);
        writeln!(out, "{}", record::header_line(config))?;
        out.flush()?;
        Ok(Recorder { out, failed: false })
    }

    /// Appends one input. A write error is logged once and recording stops; the operator goes on.
    pub(crate) fn write(&mut self, now: Now, input: &Input) {
        if self.failed {
            return;
        }
        let line = match record::entry_line(now, input) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("input not recordable, skipped in the recording: {e}");
                return;
            }
        };
        if let Err(e) = writeln!(self.out, "{line}") {
            tracing::error!("input recording stopped: {e}");
            self.failed = true;
        }
    }

    /// Flushes what was written.
    pub(crate) fn flush(&mut self) {
        if !self.failed {
            if let Err(e) = self.out.flush() {
                tracing::error!("input recording stopped: {e}");
                self.failed = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_recording_is_readable_by_its_owner_only_even_over_an_open_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inputs.jsonl");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        Recorder::create(&path, &CoreConfig::default()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let fresh = dir.path().join("new.jsonl");
        Recorder::create(&fresh, &CoreConfig::default()).unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
