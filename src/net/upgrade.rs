//! Binary upgrade without a closed listener (SIGUSR2, as nginx does it).
//!
//! The running process starts its own executable again — the file at the path it was
//! started as (`argv[0]`, found as the shell found it, symlinks not resolved), which a
//! package upgrade has replaced — with the same arguments, and
//! hands it every listening socket (site, HTTPS redirect, admin) as descriptors 3, 4,
//! … in the order and with the names systemd's socket activation uses, plus one end
//! of a pipe. `WHARF_UPGRADE_FDS`, `WHARF_UPGRADE_NAMES` and `WHARF_UPGRADE_PARENT`
//! describe them; the new process takes them only if its parent is the process named,
//! so the variables mean nothing to anything else that inherits them. Once the new
//! process serves (its accept loops run) it writes a token naming itself to the pipe.
//! Only then does the old one stop accepting and drain: its HTTP/1 connections close
//! after their next response (`Connection: close`), its HTTP/2 connections get a
//! graceful GOAWAY, and it exits when they are done or the grace period ends. Both
//! processes accept from the same sockets until the old one stops, so connections
//! queued meanwhile are served by one or the other. If the new process fails to start,
//! exits or is not ready within [`START_TIMEOUT`], it is stopped and the old one keeps
//! serving and says why; so does a stop signal while it starts.

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::AsyncReadExt as _;

use crate::net::systemd::Inherited;

const FDS: &str = "WHARF_UPGRADE_FDS";
const NAMES: &str = "WHARF_UPGRADE_NAMES";
const PARENT: &str = "WHARF_UPGRADE_PARENT";
const READY: &str = "WHARF_UPGRADE_READY_FD";

/// How long a new process may take to start serving before the upgrade is given up.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Passed descriptors are first moved at least this high, so that putting them in
/// place (3, 4, …) never overwrites one not yet moved.
const HIGH_FD: RawFd = 100;

/// What a new process needs: where the executable is, how it was started, and the
/// listening sockets to hand over with their names.
pub struct Handover {
    exe: PathBuf,
    args: Vec<OsString>,
    sockets: Vec<(OwnedFd, String)>,
}

impl Handover {
    /// The executable this process was started from, its arguments, and its
    /// listening sockets (duplicated) with their names (`""` for the site's).
    pub fn new(sockets: Vec<(OwnedFd, String)>) -> Result<Handover, String> {
        let exe = started_as()?;
        Ok(Handover {
            exe,
            args: std::env::args_os().skip(1).collect(),
            sockets,
        })
    }

    /// A copy to start a new process with (each socket duplicated), so that the
    /// original can change meanwhile.
    pub fn snapshot(&self) -> Result<Handover, String> {
        let sockets = self
            .sockets
            .iter()
            .map(|(fd, name)| fd.try_clone().map(|fd| (fd, name.clone())))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("cannot pass the listening sockets: {e}"))?;
        Ok(Handover {
            exe: self.exe.clone(),
            args: self.args.clone(),
            sockets,
        })
    }

    /// Closes this process's copies of the sockets: once it stops accepting, a
    /// socket no process accepts on must not stay open (clients would connect and
    /// wait in its queue for nothing).
    pub fn close(&mut self) {
        self.sockets.clear();
    }

    /// Hands `socket` over too (a listener a reload added).
    pub fn add(&mut self, socket: OwnedFd, name: &str) {
        self.sockets.push((socket, name.to_string()));
    }

    /// No longer hands over the socket bound to `local` (a listener a reload closed).
    pub fn remove(&mut self, local: std::net::SocketAddr) {
        self.sockets.retain(|(fd, _)| {
            rustix::net::getsockname(fd)
                .ok()
                .and_then(|a| std::net::SocketAddr::try_from(a).ok())
                != Some(local)
        });
    }

    /// Starts the new process and waits until it serves; its process id.
    pub async fn start(&self) -> Result<u32, String> {
        let (ready_read, ready_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| format!("cannot make a pipe: {e}"))?;
        // Everything passed, moved high first (close-on-exec: only the copies put in
        // place below survive the exec).
        let mut high = Vec::with_capacity(self.sockets.len() + 1);
        for fd in self
            .sockets
            .iter()
            .map(|(fd, _)| fd.as_fd())
            .chain(std::iter::once(ready_write.as_fd()))
        {
            let moved = rustix::io::fcntl_dupfd_cloexec(fd, HIGH_FD)
                .map_err(|e| format!("cannot pass a socket: {e}"))?;
            high.push(moved);
        }
        let raw: Vec<RawFd> = high.iter().map(AsRawFd::as_raw_fd).collect();
        let names: Vec<&str> = self.sockets.iter().map(|(_, n)| n.as_str()).collect();
        let mut cmd = std::process::Command::new(&self.exe);
        cmd.args(&self.args)
            .env(FDS, self.sockets.len().to_string())
            .env(NAMES, names.join(":"))
            .env(PARENT, std::process::id().to_string())
            .env(READY, (3 + self.sockets.len()).to_string())
            // A socket unit's descriptors were this process's to take.
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_FDNAMES");
        // SAFETY: between fork and exec only dup2 runs, which is async-signal-safe,
        // on descriptors this process keeps open until `spawn` returns.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                for (i, &fd) in raw.iter().enumerate() {
                    if libc::dup2(fd, 3 + i as RawFd) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        // A binary just written can be "busy" for a moment (a process forked while
        // its writer had it open holds it until that process execs): tried again
        // for up to a second before the upgrade counts as failed.
        let mut tries = 0;
        let child = loop {
            match cmd.spawn() {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 20 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                spawned => {
                    break spawned
                        .map_err(|e| format!("cannot start {}: {e}", self.exe.display()))?
                }
            }
        };
        drop(high);
        drop(ready_write);
        let pid = child.id();
        // Stopped unless it reports that it serves (also when this future is dropped:
        // a stop signal while it starts).
        let mut child = Unconfirmed(Some(child));
        let expected = ready_token(pid);
        // The token that says "serving", or the end of the pipe if the new process
        // exits first.
        let waited = tokio::time::timeout(START_TIMEOUT, async move {
            let mut pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(ready_read)?;
            let mut said = vec![0u8; expected.len()];
            pipe.read_exact(&mut said).await?;
            Ok::<_, std::io::Error>(said == expected.as_bytes())
        })
        .await;
        match waited {
            Ok(Ok(true)) => {
                if let Some(mut confirmed) = child.0.take() {
                    // Reaped by whoever adopts it when this process exits; until then
                    // a thread waits for it, so it never lingers as a zombie here.
                    let _ = std::thread::Builder::new()
                        .name("wharf-upgraded".into())
                        .spawn(move || confirmed.wait());
                }
                Ok(pid)
            }
            Ok(_) => Err("the new process exited before serving".into()),
            Err(_) => Err(format!(
                "the new process did not start serving within {}s",
                START_TIMEOUT.as_secs()
            )),
        }
    }
}

/// A new process not yet known to serve: killed and reaped when dropped.
struct Unconfirmed(Option<std::process::Child>);

impl Drop for Unconfirmed {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What a new process writes once it serves: its own id, so that nothing else
/// written to the pipe passes for it.
fn ready_token(pid: u32) -> String {
    format!("wharf-ready {pid}\n")
}

/// The executable as this process was started: `argv[0]` as given when it names a
/// path (made absolute), else found on `PATH` as the shell found it; symlinks are
/// kept, so an upgrade that moves a link starts what it now points to. Falls back
/// to the kernel's answer.
fn started_as() -> Result<PathBuf, String> {
    let fallback =
        || std::env::current_exe().map_err(|e| format!("cannot tell where the executable is: {e}"));
    let Some(arg0) = std::env::args_os().next().map(PathBuf::from) else {
        return fallback();
    };
    if arg0.components().count() > 1 {
        return match std::env::current_dir() {
            Ok(dir) => Ok(dir.join(arg0)),
            Err(_) => fallback(),
        };
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(&arg0))
            .find(|candidate| candidate.is_file())
    });
    on_path.map_or_else(fallback, Ok)
}

/// The write end of the pipe to the process that started this one, until `ready`.
static READY_PIPE: std::sync::Mutex<Option<OwnedFd>> = std::sync::Mutex::new(None);

/// The sockets an upgrading parent passed to this process, if it is one; `None`
/// when it was not started by an upgrade. The variables stay in the environment:
/// they name this process's parent, so they mean nothing to any other process.
pub fn inherited() -> Option<Result<Vec<Inherited>, String>> {
    let parent = std::env::var(PARENT).ok()?.parse::<u32>().ok()?;
    if parent != std::os::unix::process::parent_id() {
        return None;
    }
    let count = std::env::var(FDS).ok()?.parse::<RawFd>().ok()?;
    let names: Vec<String> = std::env::var(NAMES)
        .map(|n| n.split(':').map(str::to_string).collect())
        .unwrap_or_default();
    let pipe = std::env::var(READY)
        .ok()
        .and_then(|v| v.parse::<RawFd>().ok())
        .filter(|&fd| fd == 3 + count);
    if let Some(fd) = pipe {
        // SAFETY: the parent passed this descriptor, the write end of its pipe, for
        // this process to own; it is taken once, here.
        let pipe = unsafe { OwnedFd::from_raw_fd(fd) };
        *READY_PIPE.lock().unwrap_or_else(|p| p.into_inner()) = Some(pipe);
    }
    Some(crate::net::systemd::take_listeners(count, &names))
}

/// Tells the process that started this one (an upgrade) that it serves now; nothing
/// when there is none.
pub fn ready() {
    let pipe = READY_PIPE.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(pipe) = pipe {
        let token = ready_token(std::process::id());
        if rustix::io::write(&pipe, token.as_bytes()).is_err() {
            tracing::warn!("upgrade: could not tell the old process that this one serves");
        }
    }
}
