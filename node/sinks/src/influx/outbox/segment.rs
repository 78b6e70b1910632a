//! The outbox's on-disk format: segment files of checksummed records, and the scan that reads
//! them back after a restart.
//!
//! A segment is `NNNNNNNNNNNNNNNN.seg` (16 hex digits, increasing). A record is a 20-byte
//! header — body length (u32 LE), points (u32 LE), append time in Unix ms (u64 LE), CRC32 of
//! points, time and body (u32 LE) — followed by the body (line protocol). A record whose header
//! or body is cut short, or whose checksum does not match, is a torn tail: the scan stops there.
//! File handling only; which records are pending and which are delivered is `store.rs`'s.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Bytes of a record header.
pub const HEADER: usize = 20;
/// Largest body a record may have (guards the scan against a garbage length).
pub const MAX_BODY: u32 = 256 << 20;

/// One record found by a scan (or just appended).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecMeta {
    /// Segment number.
    pub seg: u64,
    /// Offset of the header in the segment.
    pub offset: u64,
    /// Body length.
    pub len: u32,
    /// Points in the body.
    pub points: u32,
    /// Append time, Unix ms.
    pub appended_ms: u64,
}

impl RecMeta {
    /// Bytes on disk (header and body).
    pub fn disk_bytes(&self) -> u64 {
        HEADER as u64 + u64::from(self.len)
    }
}

/// The segment file name of number `n`.
pub fn seg_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:016x}.seg"))
}

/// Segment numbers in `dir`, ascending (other files are ignored).
pub fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name();
        let name = name.to_string_lossy();
        if let Some(hex) = name.strip_suffix(".seg") {
            if let Ok(n) = u64::from_str_radix(hex, 16) {
                v.push(n);
            }
        }
    }
    v.sort_unstable();
    Ok(v)
}

/// Appends the header and body of one record to `out`.
pub fn encode(out: &mut Vec<u8>, body: &[u8], points: u32, appended_ms: u64) {
    let mut h = crc32fast::Hasher::new();
    h.update(&points.to_le_bytes());
    h.update(&appended_ms.to_le_bytes());
    h.update(body);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&points.to_le_bytes());
    out.extend_from_slice(&appended_ms.to_le_bytes());
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.extend_from_slice(body);
}

/// What a scan of one segment found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Whole, valid records from the start offset on, in order.
    pub records: Vec<RecMeta>,
    /// Where the valid part ends.
    pub valid_end: u64,
    /// True when bytes after `valid_end` were not a valid record (a torn tail).
    pub torn: bool,
    /// Bytes after `valid_end`.
    pub torn_bytes: u64,
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

/// Reads segment `seg` from `start` and checks every record.
pub fn scan(dir: &Path, seg: u64, start: u64) -> io::Result<Scan> {
    let mut data = Vec::new();
    File::open(seg_path(dir, seg))?.read_to_end(&mut data)?;
    let mut s = Scan {
        valid_end: start,
        ..Scan::default()
    };
    let mut at = usize::try_from(start).unwrap_or(usize::MAX);
    while at < data.len() {
        let Some(h) = data.get(at..at + HEADER) else {
            s.torn = true;
            break;
        };
        let (len, points, ms, crc) = (le_u32(h, 0), le_u32(h, 4), le_u64(h, 8), le_u32(h, 16));
        let body_at = at + HEADER;
        let Some(body) = (len <= MAX_BODY)
            .then(|| data.get(body_at..body_at + len as usize))
            .flatten()
        else {
            s.torn = true;
            break;
        };
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&points.to_le_bytes());
        hasher.update(&ms.to_le_bytes());
        hasher.update(body);
        if hasher.finalize() != crc {
            s.torn = true;
            break;
        }
        s.records.push(RecMeta {
            seg,
            offset: at as u64,
            len,
            points,
            appended_ms: ms,
        });
        at = body_at + len as usize;
        s.valid_end = at as u64;
    }
    s.torn_bytes = (data.len() as u64).saturating_sub(s.valid_end);
    Ok(s)
}

/// Reads the body of `r` from its segment.
pub fn read_body(file: &File, r: &RecMeta) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut b = vec![0u8; r.len as usize];
    file.read_exact_at(&mut b, r.offset + HEADER as u64)?;
    Ok(b)
}
