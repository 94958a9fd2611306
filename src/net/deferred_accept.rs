//! Deferred accept (`TCP_DEFER_ACCEPT`, nginx's `deferred`): the kernel hands a new
//! connection over once its first bytes are in, and what that means for a client that
//! stays silent — it was held back about a second, which counts against its header
//! timeout.

use socket2::Socket;

/// Seconds the kernel may hold a new connection back until its first bytes arrive.
#[cfg(target_os = "linux")]
const DEFER_ACCEPT_SECS: libc::c_int = 1;

/// How long a connection that is accepted with nothing to read has already waited
/// in the kernel (see [`defer_accept`]): its header timeout has run that long.
#[cfg(target_os = "linux")]
pub const SILENT_BEFORE_ACCEPT: std::time::Duration =
    std::time::Duration::from_secs(DEFER_ACCEPT_SECS as u64);
/// Connections are accepted at once where `TCP_DEFER_ACCEPT` is not used.
#[cfg(not(target_os = "linux"))]
pub const SILENT_BEFORE_ACCEPT: std::time::Duration = std::time::Duration::ZERO;

/// Whether the accepted connection on `socket`, found with nothing to read, was held
/// back by the kernel first: its SYN-ACK was sent again, which is how
/// `TCP_DEFER_ACCEPT` waits (a lost SYN-ACK costs the client the same second). Not so
/// for connections accepted at once (deferral unavailable, SYN cookies), whose
/// header timeout must not be shortened. One `getsockopt`, on silent connections only.
/// `socket` must be an open socket the caller holds (a stale number only makes the
/// call fail or describe another socket).
pub fn held_back_before_accept(socket: std::os::fd::RawFd) -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: all-zero bytes are a valid `tcp_info` (plain integers).
        let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `info`, a local of that
        // size, for a socket this function borrows.
        let rc = unsafe {
            libc::getsockopt(
                socket,
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&mut info as *mut libc::tcp_info).cast(),
                &mut len,
            )
        };
        rc == 0 && info.tcpi_total_retrans > 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = socket;
        false
    }
}

/// Asks the kernel to hand over connections once the client's first bytes are in
/// (`TCP_DEFER_ACCEPT`, nginx's `deferred`): every client speaks first in HTTP and
/// TLS, so a connection is accepted with its request already readable and is usually
/// answered without waiting on the event loop at all. A client that stays silent is
/// still handed over after about a second, which counts against its header timeout
/// (see [`held_back_before_accept`]).
/// Best effort: without it connections are accepted at once.
pub fn defer_accept(socket: &Socket) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: setsockopt reads exactly `size_of::<c_int>()` bytes from a valid
        // pointer to a local integer, on a socket this function borrows.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_DEFER_ACCEPT,
                (&DEFER_ACCEPT_SECS as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = socket;
}
