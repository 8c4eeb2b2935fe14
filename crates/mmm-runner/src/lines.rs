//! `--line-buffer`: a map command's output shown line by line as it comes, each line whole
//! (lines of items running together are mixed, never cut), tagged like a whole item's output.

use std::sync::Mutex;

use tokio::sync::mpsc;

use crate::Output;
use crate::shown::tagged;

/// The output of one command on its way to be shown line by line: the bytes read so far
/// that do not end a line yet, per stream.
pub(crate) struct Lines {
    sender: mpsc::UnboundedSender<Output>,
    key: String,
    tag: Option<String>,
    /// Bytes after the last newline: standard output, standard error.
    partial: Mutex<[Vec<u8>; 2]>,
}

impl Lines {
    /// Lines of the item `key`'s command, sent to `sender`, each after `tag` and a tab when
    /// there is one.
    pub(crate) fn new(
        sender: mpsc::UnboundedSender<Output>,
        key: String,
        tag: Option<String>,
    ) -> Self {
        Lines {
            sender,
            key,
            tag,
            partial: Mutex::default(),
        }
    }

    /// Bytes the command wrote: every line they complete is shown now.
    pub(crate) fn wrote(&self, stderr: bool, bytes: &[u8]) {
        let mut partial = self.partial.lock().unwrap_or_else(|e| e.into_inner());
        let pending = &mut partial[usize::from(stderr)];
        pending.extend_from_slice(bytes);
        let Some(last_newline) = pending.iter().rposition(|b| *b == b'\n') else {
            return;
        };
        let rest = pending.split_off(last_newline + 1);
        let whole = std::mem::replace(pending, rest);
        drop(partial);
        self.show(stderr, whole);
    }

    /// The command ended: what it wrote after its last newline is shown as it is (no newline
    /// added, as GNU parallel does).
    pub(crate) fn finish(&self) {
        let partial = std::mem::take(&mut *self.partial.lock().unwrap_or_else(|e| e.into_inner()));
        for (stream, rest) in partial.into_iter().enumerate() {
            if !rest.is_empty() {
                self.show(stream == 1, rest);
            }
        }
    }

    fn show(&self, stderr: bool, lines: Vec<u8>) {
        let lines = match &self.tag {
            Some(tag) => tagged(tag, &lines),
            None => lines,
        };
        let (stdout, stderr) = if stderr {
            (Vec::new(), lines)
        } else {
            (lines, Vec::new())
        };
        let _ = self.sender.send(Output {
            source: self.key.clone(),
            stdout,
            stderr,
        });
    }
}
