//! Response buffering: an app's response is read at the app's speed, whatever the
//! client's, so a slow client never pins an app worker (nginx's `proxy_buffering`).
//!
//! What the client has not taken yet waits in memory up to [`IN_MEMORY`] bytes, then
//! in an unnamed temporary file of at most [`MAX_FILE`] bytes (then the app waits
//! for the client); the client is fed from memory first, then from the file, in
//! order. Once it has read the file to its end, memory is used again, so a fast
//! client's brief stall does not send the rest of a large response through the
//! disk. Streams that must arrive as they are made (`text/event-stream`,
//! or an app's `X-Accel-Buffering: no`) are not buffered.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body::Body as _;
use tokio::sync::{mpsc, Notify};

use super::cache::fill::Filling;

/// Bytes of a response held in memory before the rest goes to a file: about nginx's
/// default `proxy_buffers` (8 × one memory page: 32 KiB on x86-64, 64 KiB with
/// larger pages), so that a slow client costs about what it costs nginx
/// (`bench/proxy_memory.py`).
const IN_MEMORY: usize = 64 * 1024;
/// Bytes read back from the file at a time.
const READ_SIZE: usize = 64 * 1024;
/// The most one response's file holds, as nginx's `proxy_max_temp_file_size`: past
/// it the app is read only as fast as the client takes the file, so a client that
/// reads nothing of an endless (or huge) response cannot fill the disk.
const MAX_FILE: u64 = 1024 * 1024 * 1024;

/// What the app sent that the client has not taken yet.
#[derive(Default)]
struct Pending {
    memory: VecDeque<Bytes>,
    in_memory: usize,
    /// Once the memory is full, what follows goes to the file until the client has
    /// read the file to its end (order).
    file: Option<Arc<File>>,
    written: u64,
    read: u64,
    /// The app's response ended (`Ok`) or broke (`Err`).
    ended: Option<Result<(), String>>,
}

struct Shared {
    pending: Mutex<Pending>,
    changed: Notify,
    /// The client read from the file, or went away: a full file may have room.
    drained: Notify,
    /// The most the file holds ([`MAX_FILE`]).
    file_cap: u64,
    /// Nobody takes the body any more: what the app sends is no longer kept.
    client_gone: AtomicBool,
}

/// Reads `incoming` to its end at the app's pace and feeds `tx` at the client's;
/// `keep` lives (the upstream counted busy) until the app's side is read.
/// A body shorter than its announced `expected` length is broken off too.
/// With `filling`, every chunk is also stored in the cache, and the response is
/// read to its end even when the client is gone. An app that pauses for `idle` (the
/// route's response timeout) between two pieces has its response broken off.
pub fn spawn(
    mut incoming: hyper::body::Incoming,
    expected: Option<u64>,
    tx: mpsc::Sender<io::Result<Bytes>>,
    keep: impl Send + 'static,
    mut filling: Option<Box<Filling>>,
    idle: std::time::Duration,
) {
    let shared = Arc::new(Shared::new(MAX_FILE));
    let producer = Arc::clone(&shared);
    tokio::spawn(async move {
        let _keep = keep;
        let mut seen: u64 = 0;
        let outcome = loop {
            let next = std::future::poll_fn(|cx| Pin::new(&mut incoming).poll_frame(cx));
            let Ok(frame) = tokio::time::timeout(idle, next).await else {
                break Err("upstream paused too long".to_string());
            };
            let data = match frame {
                None if expected.is_some_and(|n| seen < n) => {
                    break Err("upstream ended early".to_string())
                }
                None => break Ok(()),
                Some(Err(e)) => break Err(super::forward::with_causes(&e)),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue,
                },
            };
            seen += data.len() as u64;
            if let Some(filling) = &mut filling {
                filling.push(data.clone()).await;
            }
            if producer.client_gone.load(Ordering::Relaxed) {
                // Read on only for the cache, and only while it still wants it.
                if filling.as_ref().is_none_or(|f| f.failed()) {
                    break Err("client gone".to_string());
                }
                continue;
            }
            if let Err(e) = producer.store(data).await {
                break Err(e.to_string());
            }
        };
        if let Some(filling) = filling {
            filling.finish(outcome.is_ok()).await;
        }
        if let Err(why) = &outcome {
            if !producer.client_gone.load(Ordering::Relaxed) {
                tracing::warn!("proxy: the app's response was broken off: {why}");
            }
        }
        producer.lock().ended = Some(outcome);
        producer.changed.notify_one();
    });
    tokio::spawn(async move {
        loop {
            let next = shared.next().await;
            let last = !matches!(next, Some(Ok(_)));
            if let Some(item) = next {
                if tx.send(item).await.is_err() {
                    shared.client_gone.store(true, Ordering::Relaxed);
                    shared.drained.notify_one();
                    return;
                }
            }
            if last {
                return;
            }
        }
    });
}

impl Shared {
    fn new(file_cap: u64) -> Shared {
        Shared {
            pending: Mutex::new(Pending::default()),
            changed: Notify::new(),
            drained: Notify::new(),
            file_cap,
            client_gone: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `data` for the client: in memory while there is room and nothing unread
    /// is in the file, else appended to the file.
    async fn store(&self, data: Bytes) -> io::Result<()> {
        let file = loop {
            let room = {
                let mut p = self.lock();
                // Memory while nothing waits in the file (the client has read all of
                // it, or there is none), so the order holds; a client that caught up
                // after a stall is fed from memory again.
                if p.read == p.written && p.in_memory + data.len() <= IN_MEMORY {
                    p.in_memory += data.len();
                    p.memory.push_back(data);
                    drop(p);
                    self.changed.notify_one();
                    return Ok(());
                }
                if p.read == p.written {
                    // The file was read to its end (no read is under way then): it is
                    // written from its start again, so it grows to the largest
                    // backlog rather than to everything that ever passed through it.
                    p.read = 0;
                    p.written = 0;
                    Some(p.file.clone())
                } else if p.written + data.len() as u64 > self.file_cap
                    && !self.client_gone.load(Ordering::Relaxed)
                {
                    None
                } else {
                    Some(p.file.clone())
                }
            };
            match room {
                Some(file) => break file,
                // Full: wait for the client to read the file to its end (a wake-up
                // sent meanwhile is kept as a permit).
                None => self.drained.notified().await,
            }
        };
        let file = match file {
            Some(file) => file,
            None => {
                let file = Arc::new(
                    tokio::task::spawn_blocking(tempfile::tempfile)
                        .await
                        .map_err(io::Error::other)??,
                );
                self.lock().file = Some(Arc::clone(&file));
                file
            }
        };
        let at = self.lock().written;
        let len = data.len() as u64;
        let writer = Arc::clone(&file);
        tokio::task::spawn_blocking(move || writer.write_all_at(&data, at))
            .await
            .map_err(io::Error::other)??;
        self.lock().written += len;
        self.changed.notify_one();
        Ok(())
    }

    /// The next piece for the client, waiting for the app if there is none yet;
    /// `None` at the end, an error if the app's response broke.
    async fn next(&self) -> Option<io::Result<Bytes>> {
        loop {
            let step = {
                let mut p = self.lock();
                if let Some(chunk) = p.memory.pop_front() {
                    p.in_memory -= chunk.len();
                    return Some(Ok(chunk));
                }
                match (&p.file, &p.ended) {
                    (Some(file), _) if p.read < p.written => {
                        Some((Arc::clone(file), p.read, p.written - p.read))
                    }
                    (_, Some(Ok(()))) => return None,
                    (_, Some(Err(e))) => return Some(Err(io::Error::other(e.clone()))),
                    (_, None) => None,
                }
            };
            let Some((file, at, available)) = step else {
                // A wake-up sent meanwhile is kept as a permit: none is lost.
                self.changed.notified().await;
                continue;
            };
            let len = available.min(READ_SIZE as u64) as usize;
            let read = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; len];
                file.read_exact_at(&mut buf, at).map(|()| Bytes::from(buf))
            })
            .await
            .map_err(io::Error::other)
            .and_then(|r| r);
            let read = read.inspect(|chunk| self.lock().read += chunk.len() as u64);
            self.drained.notify_one();
            return Some(read);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file at its cap takes no more until the client has read it to its end;
    /// then it is written from its start again, never past the cap.
    #[tokio::test]
    async fn a_full_file_waits_for_the_client() {
        let cap = 2 * IN_MEMORY as u64;
        let shared = Arc::new(Shared::new(cap));
        let piece = |n: u8| Bytes::from(vec![n; IN_MEMORY]);
        // One piece in memory, two in the file: the file is full.
        for n in 0..3 {
            shared.store(piece(n)).await.unwrap();
        }
        let producer = Arc::clone(&shared);
        let app = tokio::spawn(async move { producer.store(piece(3)).await.unwrap() });
        tokio::task::yield_now().await;
        for n in 0..4 {
            let chunk = shared.next().await.unwrap().unwrap();
            assert_eq!(chunk, piece(n), "in order");
        }
        app.await.unwrap();
        let file = shared.lock().file.clone().unwrap();
        let size = file.metadata().unwrap().len();
        assert!(size <= cap, "the file grew to {size} bytes");
    }
}
