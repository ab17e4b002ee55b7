//! `--record-inputs`: every core input with its `Now`, in the core's versioned JSON-lines format
//! ([`gitops_reverser_core::record`]). Written by the driver as it hands the input over, through
//! a buffered file flushed after each batch of inputs, so a replay reproduces the run exactly.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use gitops_reverser_core::core::CoreConfig;
use gitops_reverser_core::io::Input;
use gitops_reverser_core::record;
use gitops_reverser_core::time::Now;

/// An open recording.
pub struct Recorder {
    out: BufWriter<File>,
    failed: bool,
}

impl Recorder {
    /// Creates (truncates) `path` and writes the header.
    pub fn create(path: &Path, config: &CoreConfig) -> std::io::Result<Recorder> {
        let mut out = BufWriter::new(File::create(path)?);
        writeln!(out, "{}", record::header_line(config))?;
        out.flush()?;
        Ok(Recorder { out, failed: false })
    }

    /// Appends one input. A write error is logged once and recording stops; the operator goes on.
    pub fn write(&mut self, now: Now, input: &Input) {
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
    pub fn flush(&mut self) {
        if !self.failed {
            if let Err(e) = self.out.flush() {
                tracing::error!("input recording stopped: {e}");
                self.failed = true;
            }
        }
    }
}
