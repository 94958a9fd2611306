//! The parking lot: idle keep-alive connections kept as little more than sockets.
//!
//! A keep-alive connection spends most of its life waiting for the next request. While
//! it waits, all it needs is its socket, its client's address and when it must be
//! closed. Once a connection has been idle for [`crate::net::clock::PARK_AFTER`], its
//! task ends (freeing hyper's buffers, the task and its clock) and the socket moves into
//! this per-worker lot: one slot in a vector, watched by the lot's own epoll instance.
//! When the client speaks (or hangs up), the lot hands the socket to a fresh
//! connection task; when the idle timeout passes first, the lot closes it. A couple of
//! hundred bytes of user memory stay behind per parked connection (about 200 measured
//! with 10,000), where a waiting task would keep kilobytes, scattered over pages the
//! allocator can then not give back.
//!
//! Only Linux has the lot (it uses epoll directly); elsewhere idle connections keep
//! waiting in their own tasks.

use std::collections::VecDeque;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A parked connection, as the lot gives it back.
#[derive(Debug)]
pub struct Parked {
    /// The socket, non-blocking and no longer registered with any event loop.
    pub socket: TcpStream,
    /// The client.
    pub remote: SocketAddr,
    /// The port it came in on.
    pub local_port: u16,
    /// What the connection answers with: see [`crate::net::connection::ListenerKind`].
    pub redirect_to: Option<u16>,
}

#[derive(Debug)]
struct Slot {
    parked: Parked,
    /// Distinguishes this use of the slot from earlier ones, whose events or expiry
    /// entries may still be around.
    generation: u32,
    closes_at: Instant,
}

#[derive(Debug, Default)]
struct Lot {
    /// The lot's task has ended (shutdown): nothing more is parked.
    closed: bool,
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    /// Slots in the order they close (the idle timeout is the same for all, so parking
    /// order is closing order), with the generation they were parked under.
    expiry: VecDeque<(u32, u32)>,
    /// Entries of `expiry` whose slot was emptied or reused since.
    stale: usize,
    generation: u32,
}

impl Lot {
    fn take(&mut self, key: u32, generation: u32) -> Option<Slot> {
        let slot = self.slots.get_mut(key as usize)?;
        if slot.as_ref()?.generation != generation {
            return None;
        }
        let taken = slot.take();
        self.free.push(key);
        self.stale += 1;
        // Forget entries of connections that left before their time, once they
        // outnumber the rest, so the queue stays proportional to what is parked.
        if self.stale > 64 && self.stale > self.expiry.len() / 2 {
            let slots = &self.slots;
            self.expiry.retain(|&(k, g)| {
                slots[k as usize]
                    .as_ref()
                    .is_some_and(|s| s.generation == g)
            });
            self.stale = 0;
        }
        taken
    }
}

/// One worker's parked connections.
#[derive(Debug)]
pub struct ParkingLot {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    epoll: tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>,
    lot: Mutex<Lot>,
    /// A connection was parked into an empty lot: the expiry timer must be armed.
    first_parked: Notify,
}

impl ParkingLot {
    /// A lot for the current worker's event loop; `None` where parking this way is not
    /// available (the connections then wait in their own tasks).
    pub fn new() -> Option<Arc<ParkingLot>> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use rustix::event::epoll;
            let fd = epoll::create(epoll::CreateFlags::CLOEXEC).ok()?;
            // SAFETY: the OwnedFd owns the epoll descriptor: it stays open, and
            // `as_raw_fd` returns the same one, for as long as the AsyncFd holds it.
            let epoll = unsafe {
                tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
            }
            .ok()?;
            Some(Arc::new(ParkingLot {
                epoll,
                lot: Mutex::new(Lot::default()),
                first_parked: Notify::new(),
            }))
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        None
    }

    fn lock(&self) -> MutexGuard<'_, Lot> {
        self.lot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Parks `parked` until its client sends something or `closes_at` passes. The
    /// socket must not be registered with an event loop. If it cannot be watched, it
    /// is closed: the client sees an idle connection closed, which HTTP allows.
    pub fn park(&self, parked: Parked, closes_at: Instant) {
        let mut lot = self.lock();
        if lot.closed {
            return;
        }
        lot.generation = lot.generation.wrapping_add(1);
        let generation = lot.generation;
        let key = match lot.free.pop() {
            Some(key) => key,
            None => {
                let Ok(key) = u32::try_from(lot.slots.len()) else {
                    return;
                };
                lot.slots.push(None);
                key
            }
        };
        if self.watch(&parked.socket, key, generation).is_err() {
            lot.free.push(key);
            return;
        }
        let Some(slot) = lot.slots.get_mut(key as usize) else {
            return;
        };
        *slot = Some(Slot {
            parked,
            generation,
            closes_at,
        });
        lot.expiry.push_back((key, generation));
        if lot.expiry.len().saturating_sub(lot.stale) == 1 {
            self.first_parked.notify_one();
        }
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn watch(&self, socket: &TcpStream, key: u32, generation: u32) -> std::io::Result<()> {
        use rustix::event::epoll::{self, EventData, EventFlags};
        let data = EventData::new_u64(u64::from(generation) << 32 | u64::from(key));
        // One-shot: the first sign of life hands the socket back, once.
        let flags = EventFlags::IN | EventFlags::RDHUP | EventFlags::ONESHOT;
        Ok(epoll::add(self.epoll.get_ref(), socket, data, flags)?)
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn watch(&self, _socket: &TcpStream, _key: u32, _generation: u32) -> std::io::Result<()> {
        Err(std::io::ErrorKind::Unsupported.into())
    }

    /// Takes a slot out of the lot and out of its epoll set.
    fn release(&self, lot: &mut Lot, key: u32, generation: u32) -> Option<Slot> {
        let slot = lot.take(key, generation)?;
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let _ = rustix::event::epoll::delete(self.epoll.get_ref(), &slot.parked.socket);
        Some(slot)
    }

    /// Watches the lot until `shutdown`: sockets with something to read go to
    /// `resume`, sockets idle past their time are closed. On shutdown every parked
    /// connection is closed (none has a request under way).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken, resume: impl Fn(Parked)) {
        let mut timer = Box::pin(tokio::time::sleep_until(Instant::now()));
        loop {
            let next = self.next_expiry();
            if let Some(at) = next {
                if timer.deadline() != at {
                    timer.as_mut().reset(at);
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.first_parked.notified() => {}
                _ = timer.as_mut(), if next.is_some() => self.expire(Instant::now()),
                ready = self.readable() => {
                    if ready.is_err() {
                        break;
                    }
                    for parked in self.take_ready() {
                        resume(parked);
                    }
                }
            }
        }
        // Every parked socket closes; a connection finishing its last answer during
        // shutdown closes instead of parking.
        let mut lot = self.lock();
        lot.closed = true;
        lot.slots.clear();
        lot.free.clear();
        lot.expiry.clear();
        lot.stale = 0;
    }

    fn next_expiry(&self) -> Option<Instant> {
        let mut lot = self.lock();
        while let Some(&(key, generation)) = lot.expiry.front() {
            match &lot.slots[key as usize] {
                Some(slot) if slot.generation == generation => return Some(slot.closes_at),
                _ => {
                    lot.expiry.pop_front();
                    lot.stale = lot.stale.saturating_sub(1);
                }
            }
        }
        None
    }

    /// Closes the connections whose idle timeout has passed.
    fn expire(&self, now: Instant) {
        let mut lot = self.lock();
        while let Some(&(key, generation)) = lot.expiry.front() {
            let due = match &lot.slots[key as usize] {
                Some(slot) if slot.generation == generation => slot.closes_at <= now,
                _ => true,
            };
            if !due {
                break;
            }
            lot.expiry.pop_front();
            // Dropping the socket closes it. Either way the entry just popped was
            // counted as stale (by `release`, or when its slot emptied earlier).
            drop(self.release(&mut lot, key, generation));
            lot.stale = lot.stale.saturating_sub(1);
        }
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    async fn readable(&self) -> std::io::Result<()> {
        self.epoll.readable().await.map(|mut guard| {
            // Cleared here; `take_ready` drains every event reported so far, and a
            // later one makes the epoll descriptor readable anew.
            guard.clear_ready();
        })
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    async fn readable(&self) -> std::io::Result<()> {
        std::future::pending().await
    }

    /// The parked connections whose clients have spoken (or hung up).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn take_ready(&self) -> Vec<Parked> {
        use rustix::event::epoll;
        let mut woken = Vec::new();
        let mut events: Vec<epoll::Event> = Vec::with_capacity(256);
        loop {
            events.clear();
            let zero = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            if epoll::wait(
                self.epoll.get_ref(),
                rustix::buffer::spare_capacity(&mut events),
                Some(&zero),
            )
            .is_err()
            {
                break;
            }
            let mut lot = self.lock();
            for event in &events {
                let data = event.data.u64();
                let (key, generation) = (data as u32, (data >> 32) as u32);
                if let Some(slot) = self.release(&mut lot, key, generation) {
                    woken.push(slot.parked);
                }
            }
            if events.len() < events.capacity() {
                break;
            }
        }
        woken
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn take_ready(&self) -> Vec<Parked> {
        Vec::new()
    }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;
    use std::time::Duration;

    /// A connected pair: the server side (non-blocking, as accepted) and the client.
    fn pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        (server, client)
    }

    fn parked(socket: TcpStream) -> Parked {
        let remote = socket.peer_addr().unwrap();
        let local_port = socket.local_addr().unwrap().port();
        Parked {
            socket,
            remote,
            local_port,
            redirect_to: None,
        }
    }

    fn closed_by_server(client: &mut TcpStream) -> bool {
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        matches!(client.read(&mut [0u8; 1]), Ok(0))
    }

    #[tokio::test]
    async fn hands_back_sockets_that_speak_and_closes_the_rest_in_time() {
        let lot = ParkingLot::new().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let now = Instant::now();
        let (quiet, mut quiet_client) = pair(&listener);
        let (late, mut late_client) = pair(&listener);
        let (talker, mut talker_client) = pair(&listener);
        lot.park(parked(quiet), now + Duration::from_millis(50));
        lot.park(parked(late), now + Duration::from_secs(3600));
        lot.park(parked(talker), now + Duration::from_secs(3600));
        std::io::Write::write_all(&mut talker_client, b"GET").unwrap();

        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let run = tokio::spawn(Arc::clone(&lot).run(shutdown.clone(), move |p| {
            let _ = tx.send(p);
        }));
        let back = rx.recv().await.unwrap();
        assert_eq!(back.remote, talker_client.local_addr().unwrap());
        // The quiet one is closed at its deadline; the late one stays.
        let quiet_closed = tokio::task::spawn_blocking(move || closed_by_server(&mut quiet_client));
        assert!(quiet_closed.await.unwrap());
        late_client.set_nonblocking(true).unwrap();
        assert!(late_client.read(&mut [0u8; 1]).is_err(), "closed too early");
        late_client.set_nonblocking(false).unwrap();
        shutdown.cancel();
        run.await.unwrap();
        let late_closed = tokio::task::spawn_blocking(move || closed_by_server(&mut late_client));
        assert!(
            late_closed.await.unwrap(),
            "shutdown left a parked socket open"
        );
        drop(talker_client);
        // Parking after shutdown (a connection that was finishing its last answer)
        // closes the socket instead.
        let (after, mut after_client) = pair(&listener);
        lot.park(parked(after), Instant::now() + Duration::from_secs(3600));
        let after_closed = tokio::task::spawn_blocking(move || closed_by_server(&mut after_client));
        assert!(
            after_closed.await.unwrap(),
            "parked into a lot nobody watches"
        );
    }

    #[test]
    fn forgets_departed_connections_so_the_queue_stays_bounded() {
        let mut lot = Lot::default();
        let now = Instant::now();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut clients = Vec::new();
        for round in 0..1000u32 {
            let (server, client) = pair(&listener);
            clients.push(client);
            lot.generation += 1;
            let generation = lot.generation;
            let key = lot.free.pop().unwrap_or_else(|| {
                lot.slots.push(None);
                (lot.slots.len() - 1) as u32
            });
            lot.slots[key as usize] = Some(Slot {
                parked: parked(server),
                generation,
                closes_at: now,
            });
            lot.expiry.push_back((key, generation));
            // Each connection leaves again before its time, as busy clients do.
            assert!(lot.take(key, generation).is_some(), "round {round}");
            assert!(lot.take(key, generation).is_none(), "taken twice");
            clients.clear();
        }
        assert!(
            lot.expiry.len() <= 200,
            "{} stale entries kept",
            lot.expiry.len()
        );
        assert_eq!(lot.slots.len(), 1, "slots are reused");
    }
}
