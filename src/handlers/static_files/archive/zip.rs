//! The ZIP format (PKWARE's APPNOTE 6.3), written front to back without seeking.
//!
//! Every file is preceded by a local header and followed by a data descriptor
//! (general-purpose flag bit 3) that carries its CRC-32, so nothing needs to be known
//! about a file's bytes before they are sent. In stored mode the sizes are known from
//! the walk, so every header's length, and therefore the whole archive's length and
//! the offset of every byte, is fixed before the first byte is sent: that is what
//! makes `Content-Length` and `Range` possible. Deflated members' sizes are learned as
//! they are compressed, so a deflated archive is streamed without a length.
//!
//! ZIP64 records are used exactly where a field would overflow (a member of 4 GiB or
//! more, an offset past 4 GiB, 65,535 members or more), so small archives stay
//! readable by tools without ZIP64. Names are UTF-8 (flag bit 11) and every member
//! carries its modification time in UTC (the `UT` extra field) beside the DOS time.
//! Readers that go by the central directory (Info-ZIP, Python, 7-Zip, the desktop
//! extractors) read stored members with descriptors; a few streaming readers (Java's
//! `ZipInputStream`) accept descriptors only after deflated members, and should ask
//! for `?zip=deflate`.

use std::time::{SystemTime, UNIX_EPOCH};

const LOCAL_HEADER: u32 = 0x0403_4b50;
const DATA_DESCRIPTOR: u32 = 0x0807_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const END_OF_CENTRAL_DIRECTORY: u32 = 0x0605_4b50;
const ZIP64_END_OF_CENTRAL_DIRECTORY: u32 = 0x0606_4b50;
const ZIP64_END_LOCATOR: u32 = 0x0706_4b50;

/// Flag bit 3: CRC and sizes follow the data in a descriptor.
const FLAG_DESCRIPTOR: u16 = 1 << 3;
/// Flag bit 11: the name is UTF-8.
const FLAG_UTF8: u16 = 1 << 11;

/// Version 2.0: deflate, folders. 4.5: ZIP64.
const VERSION_DEFAULT: u16 = 20;
const VERSION_ZIP64: u16 = 45;
/// Made by: Unix (3) in the high byte, so the mode bits in the external attributes
/// are read as such; specification version 6.3 in the low byte.
const MADE_BY: u16 = (3 << 8) | 63;

const ZIP64_EXTRA: u16 = 0x0001;
const TIMESTAMP_EXTRA: u16 = 0x5455;

/// What does not fit in a 32-bit field.
const MAX_32: u64 = 0xFFFF_FFFF;
/// Deflate may make a member slightly larger than its input (5 bytes per 64 KiB
/// stored block, at worst); a deflated member this large gets 64-bit sizes up front,
/// as its compressed size is not known when its header is written.
const DEFLATE_ZIP64_FROM: u64 = 0xF000_0000;

/// How a member's bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// As they are (method 0): sizes known in advance.
    Stored,
    /// Deflated (method 8): compressed size learned while writing.
    Deflated,
}

impl Method {
    fn code(self) -> u16 {
        match self {
            Method::Stored => 0,
            Method::Deflated => 8,
        }
    }
}

/// One member of an archive: a file or a folder.
#[derive(Debug, Clone)]
pub struct Member {
    /// Its path inside the archive, `/`-separated, UTF-8; a folder's ends in `/`.
    pub name: String,
    /// Bytes of a file (0 for a folder).
    pub size: u64,
    /// Modification time.
    pub mtime: Option<SystemTime>,
}

impl Member {
    /// Whether this member is a folder.
    pub fn is_dir(&self) -> bool {
        self.name.ends_with('/')
    }

    /// Seconds since the epoch, if the `UT` field can hold them.
    fn unix_time(&self) -> Option<u32> {
        let secs = self.mtime?.duration_since(UNIX_EPOCH).ok()?.as_secs();
        u32::try_from(secs).ok()
    }

    fn extra_timestamp(&self, out: &mut Vec<u8>) {
        if let Some(secs) = self.unix_time() {
            put16(out, TIMESTAMP_EXTRA);
            put16(out, 5);
            out.push(1); // modification time present
            put32(out, secs);
        }
    }

    /// Whether the local header announces 64-bit sizes (and so does the descriptor).
    fn zip64_sizes(&self, method: Method) -> bool {
        match method {
            Method::Stored => self.size >= MAX_32,
            Method::Deflated => self.size >= DEFLATE_ZIP64_FROM,
        }
    }

    /// Whether the data is followed by a descriptor (folders have no data).
    fn has_descriptor(&self) -> bool {
        !self.is_dir()
    }

    /// The general-purpose flags: UTF-8 names, and a descriptor after the data.
    fn flags(&self) -> u16 {
        if self.has_descriptor() {
            FLAG_UTF8 | FLAG_DESCRIPTOR
        } else {
            FLAG_UTF8
        }
    }

    fn method(&self, method: Method) -> Method {
        if self.is_dir() {
            Method::Stored
        } else {
            method
        }
    }
}

/// What is learned about a member while its data is written.
#[derive(Debug, Clone, Copy, Default)]
pub struct Written {
    /// Where its local header starts.
    pub offset: u64,
    /// CRC-32 of its bytes.
    pub crc: u32,
    /// Bytes of its data as stored.
    pub compressed: u64,
}

/// The version a reader needs: 2.0, or 4.5 where ZIP64 fields are used.
fn version_needed(zip64: bool) -> u16 {
    if zip64 {
        VERSION_ZIP64
    } else {
        VERSION_DEFAULT
    }
}

/// The local header of `member`.
pub fn local_header(member: &Member, method: Method) -> Vec<u8> {
    let zip64 = member.zip64_sizes(method);
    let stored = member.method(method);
    let mut out = Vec::with_capacity(30 + member.name.len() + 29);
    put32(&mut out, LOCAL_HEADER);
    put16(&mut out, version_needed(zip64));
    put16(&mut out, member.flags());
    put16(&mut out, stored.code());
    let (time, date) = dos_time(member.mtime);
    put16(&mut out, time);
    put16(&mut out, date);
    put32(&mut out, 0); // CRC-32: in the descriptor
                        // Sizes: known for stored members (streaming readers use them), in the
                        // descriptor for deflated ones.
    let known = match stored {
        Method::Stored => member.size,
        Method::Deflated => 0,
    };
    if zip64 {
        put32(&mut out, u32::MAX);
        put32(&mut out, u32::MAX);
    } else {
        put32(&mut out, known as u32);
        put32(&mut out, known as u32);
    }
    let mut extra = Vec::new();
    if zip64 {
        put16(&mut extra, ZIP64_EXTRA);
        put16(&mut extra, 16);
        put64(&mut extra, known);
        put64(&mut extra, known);
    }
    member.extra_timestamp(&mut extra);
    put16(&mut out, member.name.len() as u16);
    put16(&mut out, extra.len() as u16);
    out.extend_from_slice(member.name.as_bytes());
    out.extend_from_slice(&extra);
    out
}

/// The data descriptor after `member`'s data; empty for folders.
pub fn descriptor(member: &Member, method: Method, written: &Written) -> Vec<u8> {
    if !member.has_descriptor() {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(24);
    put32(&mut out, DATA_DESCRIPTOR);
    put32(&mut out, written.crc);
    if member.zip64_sizes(method) {
        put64(&mut out, written.compressed);
        put64(&mut out, member.size);
    } else {
        put32(&mut out, written.compressed as u32);
        put32(&mut out, member.size as u32);
    }
    out
}

/// The central directory's record of `member`.
pub fn central_header(member: &Member, method: Method, written: &Written) -> Vec<u8> {
    let sizes64 = member.zip64_sizes(method) || written.compressed >= MAX_32;
    let offset64 = written.offset >= MAX_32;
    let mut extra = Vec::new();
    if sizes64 || offset64 {
        put16(&mut extra, ZIP64_EXTRA);
        let len = if sizes64 { 16 } else { 0 } + if offset64 { 8 } else { 0 };
        put16(&mut extra, len);
        if sizes64 {
            put64(&mut extra, member.size);
            put64(&mut extra, written.compressed);
        }
        if offset64 {
            put64(&mut extra, written.offset);
        }
    }
    member.extra_timestamp(&mut extra);
    let zip64 = sizes64 || offset64;
    let mut out = Vec::with_capacity(46 + member.name.len() + extra.len());
    put32(&mut out, CENTRAL_HEADER);
    put16(&mut out, MADE_BY);
    put16(&mut out, version_needed(zip64));
    put16(&mut out, member.flags());
    put16(&mut out, member.method(method).code());
    let (time, date) = dos_time(member.mtime);
    put16(&mut out, time);
    put16(&mut out, date);
    put32(&mut out, written.crc);
    if sizes64 {
        put32(&mut out, u32::MAX);
        put32(&mut out, u32::MAX);
    } else {
        put32(&mut out, written.compressed as u32);
        put32(&mut out, member.size as u32);
    }
    put16(&mut out, member.name.len() as u16);
    put16(&mut out, extra.len() as u16);
    put16(&mut out, 0); // comment
    put16(&mut out, 0); // disk
    put16(&mut out, 0); // internal attributes
                        // Unix mode in the high half; the MS-DOS directory bit in the low byte.
    let attributes = if member.is_dir() {
        (0o040_755 << 16) | 0x10
    } else {
        0o100_644 << 16
    };
    put32(&mut out, attributes);
    put32(
        &mut out,
        if offset64 {
            u32::MAX
        } else {
            written.offset as u32
        },
    );
    out.extend_from_slice(member.name.as_bytes());
    out.extend_from_slice(&extra);
    out
}

/// The end of the archive: the ZIP64 end record and its locator when a field of the
/// classic end record would overflow, then the classic end record.
pub fn end(members: u64, central_offset: u64, central_size: u64) -> Vec<u8> {
    let zip64 = members >= 0xFFFF || central_offset >= MAX_32 || central_size >= MAX_32;
    let mut out = Vec::with_capacity(98);
    if zip64 {
        let record_offset = central_offset + central_size;
        put32(&mut out, ZIP64_END_OF_CENTRAL_DIRECTORY);
        put64(&mut out, 44); // size of the rest of this record
        put16(&mut out, MADE_BY);
        put16(&mut out, VERSION_ZIP64);
        put32(&mut out, 0); // this disk
        put32(&mut out, 0); // disk of the central directory
        put64(&mut out, members);
        put64(&mut out, members);
        put64(&mut out, central_size);
        put64(&mut out, central_offset);
        put32(&mut out, ZIP64_END_LOCATOR);
        put32(&mut out, 0);
        put64(&mut out, record_offset);
        put32(&mut out, 1); // disks
    }
    put32(&mut out, END_OF_CENTRAL_DIRECTORY);
    put16(&mut out, 0);
    put16(&mut out, 0);
    let count = if zip64 { 0xFFFF } else { members as u16 };
    put16(&mut out, count);
    put16(&mut out, count);
    put32(&mut out, if zip64 { u32::MAX } else { central_size as u32 });
    put32(
        &mut out,
        if zip64 {
            u32::MAX
        } else {
            central_offset as u32
        },
    );
    put16(&mut out, 0); // comment
    out
}

/// The exact length of a stored archive of `members`, and where each member's local
/// header starts. Headers' lengths do not depend on CRCs, so this is known before
/// any file is read.
pub fn stored_layout(members: &[Member]) -> (Vec<u64>, u64) {
    let mut offsets = Vec::with_capacity(members.len());
    let mut at = 0u64;
    for member in members {
        offsets.push(at);
        let blank = Written {
            offset: at,
            crc: 0,
            compressed: member.size,
        };
        at += local_header(member, Method::Stored).len() as u64
            + member.size
            + descriptor(member, Method::Stored, &blank).len() as u64;
    }
    let central_offset = at;
    for (member, &offset) in members.iter().zip(&offsets) {
        let blank = Written {
            offset,
            crc: 0,
            compressed: member.size,
        };
        at += central_header(member, Method::Stored, &blank).len() as u64;
    }
    let total = at + end(members.len() as u64, central_offset, at - central_offset).len() as u64;
    (offsets, total)
}

/// MS-DOS time and date (local time is unknown to a server; UTC is written, and the
/// `UT` field carries the exact time). Clamped to the years DOS can say, 1980–2107.
fn dos_time(mtime: Option<SystemTime>) -> (u16, u16) {
    let Some(secs) = mtime
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
    else {
        return (0, (1 << 5) | 1); // 1980-01-01 00:00
    };
    let Ok(at) = time::OffsetDateTime::from_unix_timestamp(secs.min(i64::MAX as u64) as i64) else {
        return (0, (1 << 5) | 1);
    };
    let year = at.year();
    if year < 1980 {
        return (0, (1 << 5) | 1);
    }
    if year > 2107 {
        return ((23 << 11) | (59 << 5) | 29, (127 << 9) | (12 << 5) | 31);
    }
    let time = ((at.hour() as u16) << 11) | ((at.minute() as u16) << 5) | (at.second() as u16 / 2);
    let date = (((year - 1980) as u16) << 9) | ((at.month() as u16) << 5) | at.day() as u16;
    (time, date)
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn member(name: &str, size: u64) -> Member {
        Member {
            name: name.to_string(),
            size,
            mtime: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
        }
    }

    #[test]
    fn dos_time_of_a_known_date() {
        // 2023-11-14 22:13:20 UTC.
        let (time, date) = dos_time(Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)));
        assert_eq!(date, ((2023 - 1980) << 9) | (11 << 5) | 14);
        assert_eq!(time, (22 << 11) | (13 << 5) | 10);
        assert_eq!(dos_time(None), (0, 33));
        assert_eq!(dos_time(Some(UNIX_EPOCH)), (0, 33));
    }

    #[test]
    fn small_members_have_classic_headers() {
        let m = member("a.txt", 5);
        let local = local_header(&m, Method::Stored);
        assert_eq!(&local[..4], &LOCAL_HEADER.to_le_bytes());
        assert_eq!(local.len(), 30 + 5 + 9);
        let w = Written {
            offset: 0,
            crc: 1,
            compressed: 5,
        };
        assert_eq!(descriptor(&m, Method::Stored, &w).len(), 16);
        assert_eq!(central_header(&m, Method::Stored, &w).len(), 46 + 5 + 9);
        assert_eq!(end(1, 100, 60).len(), 22);
    }

    #[test]
    fn large_members_and_offsets_use_zip64() {
        let m = member("big", 5 << 30);
        let local = local_header(&m, Method::Stored);
        assert_eq!(local.len(), 30 + 3 + 20 + 9);
        let w = Written {
            offset: 6 << 30,
            crc: 0,
            compressed: 5 << 30,
        };
        assert_eq!(descriptor(&m, Method::Stored, &w).len(), 24);
        assert_eq!(
            central_header(&m, Method::Stored, &w).len(),
            46 + 3 + 28 + 9
        );
        assert_eq!(end(70_000, 10, 10).len(), 56 + 20 + 22);
        // A folder has no descriptor.
        assert!(descriptor(&member("d/", 0), Method::Stored, &w).is_empty());
    }

    #[test]
    fn layout_adds_up() {
        let members = [member("d/", 0), member("d/a", 3), member("b", 0)];
        let (offsets, total) = stored_layout(&members);
        assert_eq!(offsets[0], 0);
        assert_eq!(offsets[1], 30 + 2 + 9);
        assert_eq!(offsets[2], offsets[1] + 30 + 3 + 9 + 3 + 16);
        let local_end = offsets[2] + 30 + 1 + 9 + 16;
        let central = (46 + 2 + 9) + (46 + 3 + 9) + (46 + 1 + 9);
        assert_eq!(total, local_end + central + 22);
    }
}
