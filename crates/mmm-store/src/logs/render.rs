//! Stored chunks as text: whole lines, each optionally with its item's key and its time, the
//! middle a cap dropped said in a line of its own, and (for an item read over several
//! attempts) a line before each attempt. `mmm logs` and the web API both print these bytes.

use std::collections::HashMap;

use super::LogChunk;
use super::chunk::{LogStream, decode};
use crate::StoreError;

/// How a log is shown.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// Put `[key] ` before each line (a job's items read together).
    pub prefix: bool,
    /// Put the time each line was read (RFC 3339, UTC, ms) before it.
    pub timestamps: bool,
    /// Only this stream's lines.
    pub stream: Option<LogStream>,
    /// Put `--- attempt N ---` before each attempt's output (an item read over several).
    pub attempt_headers: bool,
}

/// Where one attempt's output stands.
#[derive(Debug, Default)]
struct Open {
    key: String,
    /// Output bytes of the attempt rendered so far (both streams): a chunk starting later
    /// means a cap dropped what is between.
    next_offset: u64,
    /// The line each stream has begun but not ended, and when it began.
    partial: [(Vec<u8>, i64); 2],
}

/// Turns chunks, in the order they were written, into text.
#[derive(Debug)]
pub struct Renderer {
    options: RenderOptions,
    open: HashMap<(u64, u32), Open>,
}

impl Renderer {
    /// A renderer showing as `options` says.
    pub fn new(options: RenderOptions) -> Renderer {
        Renderer {
            options,
            open: HashMap::new(),
        }
    }

    /// Renders one chunk's whole lines into `out`, keeping a line it ends in the middle of
    /// for the attempt's next chunk.
    pub fn chunk(&mut self, chunk: &LogChunk, out: &mut Vec<u8>) -> Result<(), StoreError> {
        let frames = decode(chunk.at, &chunk.data)?;
        let key = (chunk.item_index, chunk.attempt);
        if !self.open.contains_key(&key) {
            // An item's earlier attempt has ended: its unended lines go before the new one.
            let mut earlier: Vec<(u64, u32)> = self
                .open
                .keys()
                .filter(|(item, attempt)| *item == chunk.item_index && *attempt < chunk.attempt)
                .copied()
                .collect();
            earlier.sort_unstable();
            for k in earlier {
                if let Some(mut ended) = self.open.remove(&k) {
                    self.end_partials(&mut ended, out);
                    self.open.insert(k, ended);
                }
            }
            if self.options.attempt_headers {
                self.line_start(&chunk.item_key, None, out);
                out.extend_from_slice(format!("--- attempt {} ---\n", chunk.attempt).as_bytes());
            }
            self.open.insert(
                key,
                Open {
                    key: chunk.item_key.clone(),
                    next_offset: 0,
                    partial: Default::default(),
                },
            );
        }
        let mut open = self.open.remove(&key).unwrap_or_default();
        if chunk.offset > open.next_offset {
            self.end_partials(&mut open, out);
            self.line_start(&open.key, None, out);
            let elided = chunk.offset - open.next_offset;
            out.extend_from_slice(format!("[... {} elided ...]\n", human_bytes(elided)).as_bytes());
        }
        open.next_offset = chunk.offset + chunk.bytes;
        for frame in frames {
            let wanted = self.options.stream.is_none_or(|s| s == frame.stream);
            if !wanted {
                continue;
            }
            let slot = frame.stream as usize;
            let mut rest = frame.bytes.as_slice();
            while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
                let (partial, began) = &mut open.partial[slot];
                let at = if partial.is_empty() { frame.at } else { *began };
                self.line_start(&open.key, Some(at), out);
                out.extend_from_slice(partial);
                out.extend_from_slice(&rest[..=nl]);
                partial.clear();
                rest = &rest[nl + 1..];
            }
            if !rest.is_empty() {
                let (partial, began) = &mut open.partial[slot];
                if partial.is_empty() {
                    *began = frame.at;
                }
                partial.extend_from_slice(rest);
            }
        }
        self.open.insert(key, open);
        Ok(())
    }

    /// Ends every line begun and not ended (a command whose last line has no newline gets
    /// one), for the end of what is read.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let mut open: Vec<((u64, u32), Open)> = self.open.drain().collect();
        open.sort_by_key(|(key, _)| *key);
        for (key, mut attempt) in open {
            self.end_partials(&mut attempt, out);
            self.open.insert(key, attempt);
        }
    }

    fn end_partials(&self, open: &mut Open, out: &mut Vec<u8>) {
        for slot in 0..2 {
            let (partial, began) = &open.partial[slot];
            if partial.is_empty() {
                continue;
            }
            self.line_start(&open.key, Some(*began), out);
            out.extend_from_slice(partial);
            out.push(b'\n');
            open.partial[slot].0.clear();
        }
    }

    /// What goes before a line: the key, the time (a line of mmm's own has no time of its
    /// own and gets blanks, so columns stay aligned).
    fn line_start(&self, key: &str, at: Option<i64>, out: &mut Vec<u8>) {
        if self.options.prefix {
            out.push(b'[');
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"] ");
        }
        if self.options.timestamps {
            match at {
                Some(at) => {
                    out.extend_from_slice(timestamp(at).as_bytes());
                    out.push(b' ');
                }
                None => out.extend_from_slice(&[b' '; 25]),
            }
        }
    }
}

/// `2026-12-06T13:06:34.123Z`: 24 characters.
fn timestamp(at_ms: i64) -> String {
    let secs = at_ms.div_euclid(1000);
    let ms = at_ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil: the proleptic Gregorian date of a day since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `812 B`, `64.0 KiB`, `1.3 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::chunk::ChunkBuilder;

    fn chunk(item: u64, attempt: u32, offset: u64, frames: &[(LogStream, i64, &[u8])]) -> LogChunk {
        let mut builder = ChunkBuilder::default();
        for (stream, at, bytes) in frames {
            builder.push(*stream, *at, bytes);
        }
        let (at, bytes, data) = builder.seal().unwrap();
        LogChunk {
            id: 0,
            item_index: item,
            item_key: format!("k{item}"),
            attempt,
            seq: 0,
            offset,
            bytes,
            at,
            data,
        }
    }

    fn render(options: RenderOptions, chunks: &[LogChunk]) -> String {
        let mut renderer = Renderer::new(options);
        let mut out = Vec::new();
        for c in chunks {
            renderer.chunk(c, &mut out).unwrap();
        }
        renderer.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn lines_are_whole_across_reads_and_chunks_and_streams_keep_apart() {
        use LogStream::*;
        let chunks = [
            chunk(
                0,
                1,
                0,
                &[
                    (Stdout, 0, b"hel"),
                    (Stderr, 1, b"warn\n"),
                    (Stdout, 2, b"lo\nwor"),
                ],
            ),
            chunk(0, 1, 13, &[(Stdout, 5, b"ld\nno newline")]),
        ];
        assert_eq!(
            render(RenderOptions::default(), &chunks),
            "warn\nhello\nworld\nno newline\n"
        );
        let only_err = RenderOptions {
            stream: Some(Stderr),
            ..Default::default()
        };
        assert_eq!(render(only_err, &chunks), "warn\n");
    }

    #[test]
    fn a_gap_says_how_much_was_elided_and_keys_and_times_lead_lines() {
        use LogStream::*;
        let chunks = [
            chunk(0, 1, 0, &[(Stdout, 1_764_979_200_000, b"head\n")]),
            chunk(
                0,
                1,
                5 + 3 * 1024 * 1024 * 1024 / 2,
                &[(Stdout, 1_764_979_201_500, b"tail\n")],
            ),
        ];
        let options = RenderOptions {
            prefix: true,
            timestamps: true,
            ..Default::default()
        };
        assert_eq!(
            render(options, &chunks),
            "[k0] 2025-12-06T00:00:00.000Z head\n\
             [k0]                          [... 1.5 GiB elided ...]\n\
             [k0] 2025-12-06T00:00:01.500Z tail\n"
        );
    }

    #[test]
    fn attempts_get_a_header_each() {
        use LogStream::*;
        let chunks = [
            chunk(0, 1, 0, &[(Stdout, 0, b"first\n")]),
            chunk(0, 2, 0, &[(Stdout, 0, b"second\n")]),
        ];
        let options = RenderOptions {
            attempt_headers: true,
            ..Default::default()
        };
        assert_eq!(
            render(options, &chunks),
            "--- attempt 1 ---\nfirst\n--- attempt 2 ---\nsecond\n"
        );
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(812), "812 B");
        assert_eq!(human_bytes(64 * 1024), "64.0 KiB");
        assert_eq!(human_bytes(1_395_864_371), "1.3 GiB");
    }
}
