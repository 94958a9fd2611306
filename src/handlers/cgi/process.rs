//! Running one CGI program: executed directly (no shell) with a clean environment,
//! in its own folder and its own process group, the request body fed to its stdin,
//! its stderr copied to wharf's, its stdout read as [`Output`].
//!
//! A supervisor task owns each child until it is reaped, so none is left a zombie,
//! and holds the program's slot (`--cgi-max`) until then. When the output is
//! abandoned (malformed, late, or the client left) the whole process group gets
//! SIGTERM, then SIGKILL if it has not ended after a grace period; a program that
//! closes its output but lingers gets the same after `--cgi-timeout`, and one still
//! running when wharf stops is killed with it.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use rustix::process::{kill_process_group, Pid, Signal};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout};
use tokio::sync::{oneshot, OwnedSemaphorePermit};

use super::meta::MetaVars;
use super::output::Output;
use crate::handlers::spool::Spooled;

/// How long a program has to end after SIGTERM before it gets SIGKILL.
const GRACE: Duration = Duration::from_secs(2);
/// Longest stderr line copied whole; longer ones are cut.
const MAX_LOG_LINE: usize = 4096;

/// What to execute.
#[derive(Debug)]
pub struct Invocation<'a> {
    /// The program's file, as the resolver found it.
    pub program: &'a Path,
    /// The interpreter to run it with (`python3` for `.py`), if the rule names one.
    pub interpreter: Option<&'a Path>,
    /// Its environment: the meta-variables and nothing else.
    pub env: MetaVars,
}

/// A running program's stdout; dropping it before the end stops the program.
#[derive(Debug)]
pub struct ProgramOutput {
    stdout: ChildStdout,
    buf: Vec<u8>,
    stop: Option<oneshot::Sender<()>>,
}

impl Output for ProgramOutput {
    async fn next(&mut self) -> io::Result<Option<Bytes>> {
        self.buf.resize(16 * 1024, 0);
        let n = self.stdout.read(&mut self.buf).await?;
        if n == 0 {
            // Ended: the supervisor only waits for the exit now.
            self.stop = None;
            return Ok(None);
        }
        Ok(Some(Bytes::copy_from_slice(&self.buf[..n])))
    }
}

impl Drop for ProgramOutput {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts `invocation` with `body` on its stdin; `permit` is held until the program
/// has ended; `timeout` bounds how long it may outlive its output. `name` prefixes
/// its stderr lines.
pub fn spawn(
    invocation: Invocation,
    body: Option<Spooled>,
    permit: OwnedSemaphorePermit,
    timeout: Duration,
    name: String,
) -> io::Result<ProgramOutput> {
    let folder = invocation
        .program
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    let mut command = match invocation.interpreter {
        Some(interpreter) => {
            let mut c = tokio::process::Command::new(interpreter);
            c.arg(invocation.program);
            c
        }
        None => tokio::process::Command::new(invocation.program),
    };
    command
        .env_clear()
        .envs(
            invocation
                .env
                .iter()
                .map(|(k, v)| (k.as_ref(), std::ffi::OsStr::from_bytes(v))),
        )
        .current_dir(&folder)
        .process_group(0)
        .stdin(if body.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn()?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(io::Error::other("the program's output pipes are missing"));
    };
    if let (Some(stdin), Some(body)) = (child.stdin.take(), body) {
        tokio::spawn(feed(stdin, body));
    }
    tokio::spawn(copy_stderr(stderr, name));
    let (stop, stopped) = oneshot::channel();
    tokio::spawn(supervise(child, stopped, permit, timeout));
    Ok(ProgramOutput {
        stdout,
        buf: Vec::new(),
        stop: Some(stop),
    })
}

/// Writes the request body to the program's stdin, then closes it. A program that
/// does not read its input is not an error.
async fn feed(mut stdin: ChildStdin, body: Spooled) {
    let mut offset = 0;
    while offset < body.len() {
        let Ok(piece) = body.piece(offset).await else {
            return;
        };
        if piece.is_empty() || stdin.write_all(&piece).await.is_err() {
            return;
        }
        offset += piece.len() as u64;
    }
    let _ = stdin.shutdown().await;
}

/// Copies the program's stderr to wharf's, a line at a time, each prefixed with the
/// program's name and escaped (it may echo what a client sent).
async fn copy_stderr(mut stderr: ChildStderr, name: String) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0; 4096];
    loop {
        let n = match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            log_line(&name, &line[..line.len() - 1]);
        }
        if pending.len() > MAX_LOG_LINE {
            log_line(&name, &pending);
            pending.clear();
        }
    }
    if !pending.is_empty() {
        log_line(&name, &pending);
    }
}

/// Writes one line a program sent to its stderr to wharf's: prefixed with the
/// program's name, cut at [`MAX_LOG_LINE`] bytes, escaped.
pub fn log_line(name: &str, line: &[u8]) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let shown = &line[..line.len().min(MAX_LOG_LINE)];
    let text: String = String::from_utf8_lossy(shown)
        .chars()
        .flat_map(char::escape_debug)
        .collect();
    // The program's path is a file name, which may hold control characters too.
    let name: String = name.chars().flat_map(char::escape_debug).collect();
    crate::say!("{name}: {text}");
}

/// Owns the child until it is reaped; stops its process group when told to, or
/// when it outlives its output by `timeout`.
async fn supervise(
    mut child: Child,
    stopped: oneshot::Receiver<()>,
    permit: OwnedSemaphorePermit,
    timeout: Duration,
) {
    let _permit = permit;
    let _running = crate::metrics::metrics().cgi_started();
    let Some(pgid) = child.id().and_then(|id| Pid::from_raw(id as i32)) else {
        let _ = child.wait().await;
        return;
    };
    // Should wharf stop (this task dropped with its runtime) before the program
    // ends, the group is killed rather than left running without a server.
    let mut guard = GroupGuard(Some(pgid));
    let mut stopped = stopped;
    let stop_now = tokio::select! {
        _ = child.wait() => {
            guard.disarm();
            // The leader is gone, but what it started in the background may still
            // hold its output open. Should the answer be given up on meanwhile (the
            // output paused past the timeout, the client went away), the rest of the
            // group is stopped: the group's id names it while any member lives. When
            // the output ends, nothing is left to stop.
            if stopped.await.is_ok() {
                crate::metrics::metrics().cgi_stopped();
                let _ = kill_process_group(pgid, Signal::KILL);
            }
            return;
        }
        told = &mut stopped => told.is_ok(),
    };
    if !stop_now && tokio::time::timeout(timeout, child.wait()).await.is_ok() {
        return guard.disarm();
    }
    // The leader is not reaped yet, so its id still names this group.
    crate::metrics::metrics().cgi_stopped();
    let _ = kill_process_group(pgid, Signal::TERM);
    if tokio::time::timeout(GRACE, child.wait()).await.is_err() {
        let _ = kill_process_group(pgid, Signal::KILL);
        let _ = child.wait().await;
    }
    guard.disarm();
}

/// Kills a program's process group when dropped while armed.
struct GroupGuard(Option<Pid>);

impl GroupGuard {
    /// The program was reaped: nothing to kill.
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.take() {
            let _ = kill_process_group(pgid, Signal::KILL);
        }
    }
}

/// Marks every descriptor wharf inherited (beyond stdin, stdout and stderr)
/// close-on-exec, so that programs it runs get only their three pipes: wharf's own
/// descriptors are opened close-on-exec already, but whatever started wharf may have
/// left others open. Called once at startup, before any program runs.
pub fn close_inherited_descriptors_on_exec() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: close_range(2) with CLOSE_RANGE_CLOEXEC only sets a flag on open
        // descriptors; it touches no memory. An old kernel answers ENOSYS or EINVAL,
        // which leaves things as they were.
        let _ = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            )
        };
    }
}
