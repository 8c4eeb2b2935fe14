//! The stored form of an attempt's output: chunks of frames, each frame one read from a
//! command's standard output or error with the time it was read, compressed with zstd.
//!
//! A frame is `stream (1 byte) | ms after the chunk's time (varint) | length (varint) | bytes`.
//! Frames keep reads whole rather than splitting them into lines: the capture on the hot path
//! only copies bytes, and the reader (`render`) makes lines, each with the time of the read
//! it began in.

use std::cell::RefCell;

use crate::StoreError;

/// How many bytes of output a chunk holds before it is sealed: large enough to compress well
/// and to keep a 64 MiB log to about a thousand rows, small enough that a chunk of a live item
/// is a small write.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// zstd's level for chunks: its fastest regular level, which still shrinks typical logs
/// several times over (the capture must keep up with a command writing at full speed).
const LEVEL: i32 = 1;

/// Which pipe a piece of output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl LogStream {
    /// `stdout` or `stderr`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }

    /// Reads `stdout` or `stderr`.
    pub fn parse(text: &str) -> Option<LogStream> {
        match text {
            "stdout" => Some(LogStream::Stdout),
            "stderr" => Some(LogStream::Stderr),
            _ => None,
        }
    }

    fn code(self) -> u8 {
        match self {
            LogStream::Stdout => 0,
            LogStream::Stderr => 1,
        }
    }
}

/// One read of output, decoded from a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Where it came from.
    pub stream: LogStream,
    /// When it was read, epoch ms.
    pub at: i64,
    /// The bytes read.
    pub bytes: Vec<u8>,
}

/// A chunk being filled by a capture: frames appended uncompressed, sealed into a
/// compressed chunk by [`ChunkBuilder::seal`].
#[derive(Debug, Default)]
pub struct ChunkBuilder {
    frames: Vec<u8>,
    at: i64,
    bytes: u64,
}

impl ChunkBuilder {
    /// Appends one read of `stream`'s output, read at `at` (epoch ms).
    pub fn push(&mut self, stream: LogStream, at: i64, bytes: &[u8]) {
        if self.frames.is_empty() {
            self.frames.reserve(CHUNK_BYTES + 64);
            self.at = at;
        }
        self.frames.push(stream.code());
        put_varint(&mut self.frames, at.saturating_sub(self.at).max(0) as u64);
        put_varint(&mut self.frames, bytes.len() as u64);
        self.frames.extend_from_slice(bytes);
        self.bytes += bytes.len() as u64;
    }

    /// Output bytes in the chunk so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// True when nothing was pushed since the last seal.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The time of the chunk's first frame, epoch ms.
    pub fn at(&self) -> i64 {
        self.at
    }

    /// Compresses what was pushed and starts an empty chunk: `(time of the first frame, output
    /// bytes, compressed frames)`, or `None` when nothing was pushed.
    pub fn seal(&mut self) -> Option<(i64, u64, Vec<u8>)> {
        if self.frames.is_empty() {
            return None;
        }
        let data = compress(&self.frames);
        let sealed = (self.at, self.bytes, data);
        self.frames.clear();
        self.bytes = 0;
        Some(sealed)
    }
}

thread_local! {
    /// One compression context per thread, reused: creating one costs more than compressing a
    /// small chunk.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
}

/// The frames compressed; should zstd fail (it does not on valid input), the frames are kept
/// uncompressed under a marker byte rather than lost.
fn compress(frames: &[u8]) -> Vec<u8> {
    let compressed = COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = zstd::bulk::Compressor::new(LEVEL).ok();
        }
        cell.as_mut().and_then(|c| c.compress(frames).ok())
    });
    match compressed {
        Some(data) => data,
        None => {
            let mut raw = Vec::with_capacity(frames.len() + 1);
            raw.push(RAW_MARKER);
            raw.extend_from_slice(frames);
            raw
        }
    }
}

/// First byte of a chunk stored uncompressed (a zstd frame starts with 0x28).
const RAW_MARKER: u8 = 0;

/// Decodes a stored chunk whose first frame was read at `at`.
pub fn decode(at: i64, data: &[u8]) -> Result<Vec<Frame>, StoreError> {
    let bad = |why: &str| StoreError::DamagedLog {
        why: why.to_string(),
    };
    let frames = match data.first() {
        Some(&RAW_MARKER) => data[1..].to_vec(),
        Some(_) => zstd::stream::decode_all(data).map_err(|e| bad(&e.to_string()))?,
        None => Vec::new(),
    };
    let mut out = Vec::new();
    let mut rest = frames.as_slice();
    while let Some((&code, tail)) = rest.split_first() {
        let stream = match code {
            0 => LogStream::Stdout,
            1 => LogStream::Stderr,
            _ => return Err(bad("unknown stream")),
        };
        let (delta, tail) = get_varint(tail).ok_or_else(|| bad("cut short"))?;
        let (len, tail) = get_varint(tail).ok_or_else(|| bad("cut short"))?;
        let len = usize::try_from(len).map_err(|_| bad("frame too long"))?;
        if tail.len() < len {
            return Err(bad("cut short"));
        }
        out.push(Frame {
            stream,
            at: at.saturating_add(delta as i64),
            bytes: tail[..len].to_vec(),
        });
        rest = &tail[len..];
    }
    Ok(out)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn get_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_back_as_pushed_with_their_streams_and_times() {
        let mut chunk = ChunkBuilder::default();
        chunk.push(LogStream::Stdout, 1_000, b"one\ntw");
        chunk.push(LogStream::Stderr, 1_003, b"oops\n");
        chunk.push(LogStream::Stdout, 1_200, &[b'x'; 300]);
        assert_eq!(chunk.bytes(), 6 + 5 + 300);
        let (at, bytes, data) = chunk.seal().unwrap();
        assert!(chunk.is_empty() && chunk.seal().is_none());
        assert_eq!((at, bytes), (1_000, 311));
        assert!(data.len() < 311, "compressed: {} bytes", data.len());
        let frames = decode(at, &data).unwrap();
        assert_eq!(
            frames,
            vec![
                Frame {
                    stream: LogStream::Stdout,
                    at: 1_000,
                    bytes: b"one\ntw".to_vec()
                },
                Frame {
                    stream: LogStream::Stderr,
                    at: 1_003,
                    bytes: b"oops\n".to_vec()
                },
                Frame {
                    stream: LogStream::Stdout,
                    at: 1_200,
                    bytes: vec![b'x'; 300]
                },
            ]
        );
    }

    #[test]
    fn a_damaged_chunk_is_an_error_not_a_panic() {
        assert!(decode(0, &[0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3]).is_err());
        assert!(decode(0, &[RAW_MARKER, 0, 0x85]).is_err());
        assert!(decode(0, &[RAW_MARKER, 7, 0, 0]).is_err());
    }
}
