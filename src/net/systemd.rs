//! systemd integration: socket activation (the listening sockets a socket unit
//! passes, `sd_listen_fds(3)`: `LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`) and
//! readiness notification (`sd_notify(3)`: `READY=1`, `RELOADING=1`, `STOPPING=1`
//! on `$NOTIFY_SOCKET`), so that `Type=notify` services and `.socket` units work.
//! Both are a few lines of the documented protocol, not a library.

use std::net::TcpListener;
use std::os::fd::{FromRawFd, RawFd};

/// The first descriptor systemd passes.
const FIRST_FD: RawFd = 3;
/// The name that makes a passed socket the admin listener rather than a site one.
pub const ADMIN_NAME: &str = "admin";
/// The name that makes a passed socket a plain-HTTP listener redirecting to HTTPS.
pub const REDIRECT_NAME: &str = "redirect-http";

/// A listening socket systemd passed, with its name (`FileDescriptorName=`).
pub struct Inherited {
    /// Its name, if the unit gave one.
    pub name: Option<String>,
    /// The socket.
    pub listener: TcpListener,
}

/// The listening sockets passed to this process, if it was socket-activated;
/// an error names a descriptor that is not a listening TCP socket.
pub fn inherited_listeners() -> Result<Vec<Inherited>, String> {
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|pid| pid.parse::<u32>().ok())
        .is_some_and(|pid| pid == std::process::id());
    if !for_us {
        return Ok(Vec::new());
    }
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<RawFd>().ok())
        .unwrap_or(0);
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|n| n.split(':').map(str::to_string).collect())
        .unwrap_or_default();
    take_listeners(count, &names)
}

/// Takes ownership of the `count` listening sockets at descriptors 3, 4, …, named by
/// `names` in order; an error names one that is not a listening TCP socket.
pub fn take_listeners(count: RawFd, names: &[String]) -> Result<Vec<Inherited>, String> {
    let mut passed = Vec::new();
    for i in 0..count.clamp(0, 1024) {
        let fd = FIRST_FD + i;
        // SAFETY: the descriptor is open for as long as this borrow (systemd passed
        // it, and nothing closes it meanwhile).
        let stat = rustix::fs::fstat(unsafe { rustix::fd::BorrowedFd::borrow_raw(fd) })
            .map_err(|e| format!("socket activation: descriptor {fd}: {e}"))?;
        if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::Socket {
            return Err(format!(
                "socket activation: descriptor {fd} is not a socket"
            ));
        }
        // SAFETY: as above.
        let borrowed = unsafe { rustix::fd::BorrowedFd::borrow_raw(fd) };
        let stream = rustix::net::sockopt::socket_type(borrowed)
            .is_ok_and(|t| t == rustix::net::SocketType::STREAM);
        let listening = rustix::net::sockopt::socket_acceptconn(borrowed).unwrap_or(false);
        if !(stream && listening) {
            return Err(format!(
                "socket activation: descriptor {fd} is not a listening stream socket \
                 (a datagram socket, or Accept=yes, which wharf does not take)"
            ));
        }
        // SAFETY: systemd passed this descriptor to this process (LISTEN_PID is ours)
        // for it to own, and it is a listening socket.
        let listener = unsafe { TcpListener::from_raw_fd(fd) };
        listener
            .local_addr()
            .and_then(|_| listener.set_nonblocking(true))
            .map_err(|e| format!("socket activation: descriptor {fd} is not a TCP socket: {e}"))?;
        // Socket options live in the socket: what wharf sets on those it binds, it
        // sets here too (a unit's `DeferAcceptSec=` stays the unit's choice).
        crate::net::listener::bound_unsent(&listener);
        passed.push(Inherited {
            name: names.get(i as usize).filter(|n| !n.is_empty()).cloned(),
            listener,
        });
    }
    Ok(passed)
}

/// Tells the service manager about a change of state (`READY=1`, `STOPPING=1`,
/// ...), when it asked to be told (`$NOTIFY_SOCKET`); nothing otherwise.
pub fn notify(state: &str) {
    let Ok(path) = std::env::var("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(socket) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        if let Ok(addr) = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()) {
            let _ = socket.send_to_addr(state.as_bytes(), &addr);
        }
    } else {
        let _ = socket.send_to(state.as_bytes(), &path);
    }
}

/// `RELOADING=1` with the monotonic time systemd wants beside it.
pub fn reloading() {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let usec = now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000;
    notify(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
}
