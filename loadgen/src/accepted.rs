//! The `--accepted-out` file: every bid accepted in the run, warm-up included, one line each as
//! the answers come, so that a test can check each against the durable state afterwards.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use anyhow::Context;
use auction_proto::ws::BidAccepted;

/// The file, shared by every bidder. A std mutex, not a tokio one: nothing is awaited while it is
/// held, and a line is a few dozen bytes into a buffer.
pub(crate) struct AcceptedLog {
    path: PathBuf,
    out: Mutex<Out>,
}

struct Out {
    file: BufWriter<File>,
    /// The first write that failed; later lines are not tried, and the run reports it at the end.
    failed: Option<std::io::Error>,
}

impl AcceptedLog {
    /// Creates (or empties) the file before the run starts, so a path that cannot be written
    /// fails the run at once rather than after it.
    pub(crate) fn create(path: &Path) -> anyhow::Result<AcceptedLog> {
        let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        let out = Out { file: BufWriter::new(file), failed: None };
        Ok(AcceptedLog { path: path.to_owned(), out: Mutex::new(out) })
    }

    /// Appends the line of one accepted bid (buffered).
    pub(crate) fn record(&self, accepted: &BidAccepted, at_unix_ms: u64) {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        if out.failed.is_none()
            && let Err(e) = out.file.write_all(line(accepted, at_unix_ms).as_bytes())
        {
            out.failed = Some(e);
        }
    }

    /// Writes out what is buffered; the first failure of the run, if any.
    pub(crate) fn finish(&self) -> anyhow::Result<()> {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        let flushed = out.file.flush();
        match out.failed.take().map_or(flushed, Err) {
            Ok(()) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot write {}", self.path.display())),
        }
    }
}

/// One line: `auction_id bid_id amount_cents seq accepted_unix_ms`, space-separated (ids never
/// hold spaces, by the id rule), so that `awk` and `sort` read it.
pub(crate) fn line(accepted: &BidAccepted, at_unix_ms: u64) -> String {
    format!(
        "{} {} {} {} {at_unix_ms}\n",
        accepted.auction_id.as_str(),
        accepted.bid_id.as_str(),
        accepted.amount.cents(),
        accepted.seq
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_the_ids_the_cents_the_seq_and_the_time() {
        let accepted: BidAccepted = serde_json::from_str(
            r#"{"auction_id":"3f2a9c01d4e5b6a7","bid_id":"b-17","amount":"102.50","seq":3,"end_time":"2026-11-26T10:10:15.500Z"}"#,
        )
        .unwrap();
        assert_eq!(line(&accepted, 1_795_687_785_500), "3f2a9c01d4e5b6a7 b-17 10250 3 1795687785500\n");
    }
}
