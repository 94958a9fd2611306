//! Request buffering: a body received whole before an app server or a program sees
//! it, so a slow client costs wharf a connection and a file, never an app worker or a
//! running process.
//!
//! Up to [`IN_MEMORY`] bytes stay in memory; a larger body goes to an unnamed
//! temporary file (gone when closed, whatever happens), written as the upload streams
//! are (bounded memory, back-pressure on the client).

use std::fs::File;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::StatusCode;

use crate::handlers::uploads::body::{receive, Chunks};
use crate::http::request_body::RequestBody;

/// Bodies up to this size are kept in memory.
const IN_MEMORY: usize = 64 * 1024;

/// A request body received whole.
#[derive(Debug)]
pub enum Spooled {
    /// Small: in memory.
    Memory(Bytes),
    /// Large: in a temporary file, this long.
    File(Arc<File>, u64),
}

/// Receives `body` whole: 413 past `limit` bytes, 408 when it stalls for `idle`, 400
/// when it breaks off, 507 or 500 when it cannot be stored.
pub async fn spool(
    body: &mut RequestBody,
    limit: u64,
    idle: Duration,
) -> Result<Spooled, StatusCode> {
    let mut memory = BytesMut::new();
    loop {
        match tokio::time::timeout(idle, body.next_chunk()).await {
            Err(_) => return Err(StatusCode::REQUEST_TIMEOUT),
            Ok(None) => return Ok(Spooled::Memory(memory.freeze())),
            Ok(Some(Err(e))) => return Err(e.status()),
            Ok(Some(Ok(chunk))) => {
                if (memory.len() + chunk.len()) as u64 > limit {
                    return Err(StatusCode::PAYLOAD_TOO_LARGE);
                }
                memory.extend_from_slice(&chunk);
                if memory.len() > IN_MEMORY {
                    break;
                }
            }
        }
    }
    // Too large for memory: what arrived so far starts the file.
    let head = memory.freeze();
    let file = tokio::task::spawn_blocking(move || -> std::io::Result<File> {
        use std::os::unix::fs::FileExt;
        let file = tempfile::tempfile()?;
        file.write_all_at(&head, 0)?;
        Ok(file)
    })
    .await
    .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?
    .map_err(|e| disk_status(&e))?;
    let file = Arc::new(file);
    let start = file.metadata().map(|m| m.len()).unwrap_or(0);
    let received = receive(body, &file, start, limit.saturating_sub(start), idle, None).await;
    match received.outcome {
        Ok(()) => Ok(Spooled::File(file, start + received.written)),
        Err(e) => Err(e.status()),
    }
}

fn disk_status(err: &std::io::Error) -> StatusCode {
    if err.raw_os_error() == Some(libc::ENOSPC) {
        StatusCode::INSUFFICIENT_STORAGE
    } else {
        tracing::error!("cannot buffer a request body: {err}");
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

/// How much of a buffered body is handed on at a time.
const PIECE: u64 = 64 * 1024;

impl Spooled {
    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Spooled::Memory(bytes) => bytes.len() as u64,
            Spooled::File(_, len) => *len,
        }
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Up to 64 KiB of it from `offset` (empty past the end), read from the file on
    /// the blocking pool when it is in one.
    pub async fn piece(&self, offset: u64) -> std::io::Result<Bytes> {
        let end = self.len().min(offset.saturating_add(PIECE));
        if offset >= end {
            return Ok(Bytes::new());
        }
        match self {
            Spooled::Memory(bytes) => Ok(bytes.slice(offset as usize..end as usize)),
            Spooled::File(file, _) => {
                let file = Arc::clone(file);
                tokio::task::spawn_blocking(move || {
                    use std::os::unix::fs::FileExt;
                    let mut buf = vec![0; (end - offset) as usize];
                    file.read_exact_at(&mut buf, offset)?;
                    Ok(Bytes::from(buf))
                })
                .await
                .map_err(std::io::Error::other)?
            }
        }
    }
}
