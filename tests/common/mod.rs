//! Shared harness for the wharf integration tests: starting the server binary,
//! collecting its output, and a small raw HTTP/1.x client built on `httparse`.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Read/write timeout for every client socket.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for an access-log line to show up.
pub const LOG_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server may take to print its listening banner.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a process that is expected to exit on its own may run.
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);
/// Interval between two checks of a polled condition.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

type Lines = Arc<Mutex<Vec<String>>>;

/// Whether `program` is on the `PATH` (an outside tool a test drives).
pub fn have(program: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether every program in `programs` is here. One missing is a skip, said on
/// stderr, except under CI, which must have them all.
pub fn have_all(programs: &[&str]) -> bool {
    let missing: Vec<&str> = programs.iter().copied().filter(|p| !have(p)).collect();
    if !missing.is_empty() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have {}",
            missing.join(", ")
        );
        eprintln!("skipped: needs {}", missing.join(", "));
    }
    missing.is_empty()
}

/// Runs `bash -c script` with `args` as `$1`, `$2`, … inside a network namespace of
/// its own (only a loopback interface, down until the script brings it up): where a
/// server may listen on every address, or several hosts are played, and no one
/// outside can reach them. Root makes the namespace; anyone else is mapped to root
/// in a user namespace first.
pub fn in_network_namespace<S: AsRef<std::ffi::OsStr>>(
    script: &str,
    args: &[S],
) -> std::process::ExitStatus {
    let mut unshare = std::process::Command::new("unshare");
    if !rustix::process::geteuid().is_root() {
        unshare.arg("--map-root-user");
    }
    unshare
        .args(["--net", "bash", "-c", script, "netns"])
        .args(args)
        .status()
        .expect("unshare runs")
}

/// A loopback port free a moment ago (for a peer that must be told its port before
/// it starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An app that never answers, on loopback: it takes one connection, says
/// `"connected"`, reads and drops whatever comes, and says `"closed"` once the
/// other side has closed it. For checking that wharf lets go of an app (proxied,
/// FastCGI) whose client left.
pub fn silent_app() -> (
    std::net::SocketAddr,
    std::sync::mpsc::Receiver<&'static str>,
) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (events, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        let _ = events.send("connected");
        let mut sink = [0u8; 4096];
        while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
        let _ = events.send("closed");
    });
    (addr, seen)
}

/// Poll `f` until it returns `Some`, or give up after `timeout`.
pub fn poll_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Read `reader` line by line into `lines` until EOF (line terminators stripped).
fn drain_lines<R: Read + Send + 'static>(reader: R, lines: Lines) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut reader = BufReader::new(reader);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if line.ends_with(b"\n") {
                        line.pop();
                        if line.ends_with(b"\r") {
                            line.pop();
                        }
                    }
                    let text = String::from_utf8_lossy(&line).into_owned();
                    lines.lock().unwrap().push(text);
                }
            }
        }
    })
}

fn wharf_command<S: AsRef<OsStr>>(args: &[S], cwd: Option<&Path>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wharf"));
    cmd.args(args)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    cmd
}

/// `ROOT --port 0 -b 127.0.0.1 EXTRA...`: the arguments of a wharf serving `root` on
/// a free loopback port.
pub fn loopback_args<'a>(root: &'a Path, extra: &[&'a str]) -> Vec<&'a OsStr> {
    let mut args: Vec<&OsStr> = vec![
        root.as_os_str(),
        OsStr::new("--port"),
        OsStr::new("0"),
        OsStr::new("-b"),
        OsStr::new("127.0.0.1"),
    ];
    args.extend(extra.iter().map(|arg| OsStr::new(*arg)));
    args
}

/// A running wharf process. Killed when dropped.
pub struct Server {
    child: Child,
    addr: String,
    banner: String,
    stdout: Lines,
    stderr: Lines,
    readers: Vec<JoinHandle<()>>,
    /// wharf's stdout when it is deliberately left unread.
    _unread_stdout: Option<ChildStdout>,
}

impl Server {
    /// `wharf ROOT --port 0 -b 127.0.0.1 EXTRA_ARGS...`
    pub fn start(root: &Path, extra_args: &[&str]) -> Server {
        let args = loopback_args(root, extra_args);
        Server::spawn(&args, None)
    }

    /// Start wharf with exactly `args`, optionally in `cwd`, and wait for the
    /// `wharf: serving ... at http://HOST:PORT/` banner on stderr.
    pub fn spawn<S: AsRef<OsStr>>(args: &[S], cwd: Option<&Path>) -> Server {
        Server::launch(
            wharf_command(args, cwd),
            |line| line.contains("http://"),
            banner_address,
            true,
        )
    }

    /// Like [`Server::start`], with the command changed by `configure` first (its
    /// environment, descriptors it inherits).
    pub fn start_configured(
        root: &Path,
        extra_args: &[&str],
        configure: impl FnOnce(&mut Command),
    ) -> Server {
        let args = loopback_args(root, extra_args);
        let mut cmd = wharf_command(&args, None);
        configure(&mut cmd);
        Server::launch(cmd, |line| line.contains("http://"), banner_address, true)
    }

    /// Like [`Server::start`], but nothing ever reads wharf's stdout: once the pipe
    /// is full, every write to it blocks.
    pub fn start_with_stdout_unread(root: &Path, extra_args: &[&str]) -> Server {
        let args = loopback_args(root, extra_args);
        Server::launch(
            wharf_command(&args, None),
            |line| line.contains("http://"),
            banner_address,
            false,
        )
    }

    /// Like [`Server::start`], with wharf's stdout going to `stdout` (a file, say
    /// `/dev/full`) instead of a pipe read here.
    pub fn start_with_stdout(root: &Path, extra_args: &[&str], stdout: Stdio) -> Server {
        let args = loopback_args(root, extra_args);
        let mut cmd = wharf_command(&args, None);
        cmd.stdout(stdout);
        Server::launch(cmd, |line| line.contains("http://"), banner_address, false)
    }

    /// Starts `cmd` (a wharf, perhaps a copy of the binary elsewhere, with its stdout
    /// and stderr piped) and waits for its banner.
    pub fn spawn_command(cmd: Command) -> Server {
        Server::launch(cmd, |line| line.contains("http://"), banner_address, true)
    }

    /// Starts `cmd` and waits until a stderr line satisfies `is_banner`; `addr_of`
    /// extracts the address to connect to from it.
    fn launch(
        mut cmd: Command,
        is_banner: impl Fn(&str) -> bool,
        addr_of: fn(&str) -> String,
        drain_stdout: bool,
    ) -> Server {
        // A copy of the binary a test just wrote can be "busy" for a moment: a
        // process another test thread forked meanwhile holds the copy's write
        // descriptor until it execs.
        let mut child = poll_until(STARTUP_TIMEOUT, || match cmd.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => None,
            spawned => Some(spawned),
        })
        .expect("the executable stays busy")
        .expect("spawn wharf");
        let stdout = Lines::default();
        let stderr = Lines::default();
        let mut readers = vec![drain_lines(child.stderr.take().unwrap(), stderr.clone())];
        let mut unread_stdout = child.stdout.take();
        if drain_stdout {
            readers.push(drain_lines(unread_stdout.take().unwrap(), stdout.clone()));
        }
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let banner = loop {
            let found = stderr
                .lock()
                .unwrap()
                .iter()
                .find(|line| is_banner(line))
                .cloned();
            if let Some(line) = found {
                break line;
            }
            if let Some(status) = child.try_wait().unwrap() {
                for reader in readers {
                    reader.join().unwrap();
                }
                panic!(
                    "wharf exited ({status}) before listening; stderr: {:?}",
                    stderr.lock().unwrap()
                );
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "wharf printed no listening banner; stderr: {:?}",
                    stderr.lock().unwrap()
                );
            }
            thread::sleep(POLL_INTERVAL);
        };
        let addr = addr_of(&banner);
        Server {
            child,
            addr,
            banner,
            stdout,
            stderr,
            readers,
            _unread_stdout: unread_stdout,
        }
    }

    /// `host:port` to connect to, e.g. `127.0.0.1:41234` or `[::1]:41234`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn socket_addr(&self) -> SocketAddr {
        self.addr
            .parse()
            .expect("banner address is a socket address")
    }

    pub fn port(&self) -> u16 {
        self.socket_addr().port()
    }

    /// The stderr line that announced the listener.
    pub fn banner(&self) -> &str {
        &self.banner
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Snapshot of every stdout (access log) line so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Snapshot of every stderr line so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Poll stdout until a line satisfies `predicate`; panics after `timeout`.
    pub fn wait_for_log_line(&self, predicate: impl Fn(&str) -> bool, timeout: Duration) -> String {
        poll_until(timeout, || {
            self.stdout
                .lock()
                .unwrap()
                .iter()
                .find(|line| predicate(line))
                .cloned()
        })
        .unwrap_or_else(|| {
            panic!(
                "no matching access-log line within {timeout:?}; stdout: {:?}",
                self.stdout_lines()
            )
        })
    }

    /// `wait_for_log_line` with the default deadline.
    pub fn wait_for_log(&self, predicate: impl Fn(&str) -> bool) -> String {
        self.wait_for_log_line(predicate, LOG_TIMEOUT)
    }

    /// Send a signal such as `"TERM"` or `"INT"` with kill(1).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed: {status}");
    }

    /// Poll for process exit; `None` if it is still running after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        poll_until(timeout, || self.child.try_wait().unwrap())
    }

    /// Wait (up to 15 s) for the process to exit on its own, then for its
    /// output pipes to be fully drained. Panics if it does not exit.
    pub fn expect_exit(&mut self) -> ExitStatus {
        let status = self.wait_exit(EXIT_TIMEOUT).unwrap_or_else(|| {
            panic!(
                "wharf did not exit within {EXIT_TIMEOUT:?}; stderr: {:?}",
                self.stderr_lines()
            )
        });
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Extract `host:port` from `wharf: serving /root at http://host:port/`.
fn banner_address(line: &str) -> String {
    let start = line.find("http://").expect("banner has a URL") + "http://".len();
    let rest = &line[start..];
    let end = rest.find('/').unwrap_or(rest.len());
    rest[..end].trim().to_string()
}

/// Result of running wharf to completion.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Run wharf with `args` and wait (up to 15 s) for it to exit by itself.
pub fn run_to_exit<S: AsRef<OsStr>>(args: &[S], cwd: Option<&Path>) -> Finished {
    let mut child = wharf_command(args, cwd).spawn().expect("spawn wharf");
    let collect = |mut reader: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = reader.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = collect(Box::new(child.stdout.take().unwrap()));
    let stderr = collect(Box::new(child.stderr.take().unwrap()));
    let status = poll_until(EXIT_TIMEOUT, || child.try_wait().unwrap());
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "wharf {:?} kept running; expected it to exit. stderr: {:?}",
            args.iter()
                .map(|a| a.as_ref().to_owned())
                .collect::<Vec<_>>(),
            stderr.join().unwrap()
        );
    };
    Finished {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

// ---------------------------------------------------------------------------
// Raw HTTP client
// ---------------------------------------------------------------------------

/// One parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    pub reason: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Response {
    /// First header with this name (case-insensitive), lossily decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers_all(name).into_iter().next()
    }

    /// Every header with this name (case-insensitive), in order.
    pub fn headers_all(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `Content-Length` parsed as a number.
    pub fn content_length(&self) -> Option<usize> {
        self.header("content-length").map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|_| panic!("bad Content-Length {v:?}"))
        })
    }

    fn is_chunked(&self) -> bool {
        self.headers_all("transfer-encoding")
            .iter()
            .any(|v| v.to_ascii_lowercase().contains("chunked"))
    }
}

/// A connection that reads responses one at a time, keeping any bytes that
/// belong to later responses (keep-alive, pipelining).
pub struct Conn<S = TcpStream> {
    stream: S,
    buf: Vec<u8>,
    /// Bytes read from the stream so far.
    received: u64,
}

/// How often the setup of a connection is tried: a loaded machine may reset a
/// connection (the kernel short of socket memory) before wharf has said anything.
/// Only the setup is retried, never a check.
pub const SETUP_ATTEMPTS: usize = 3;

/// Whether `e` is the kind of failure a connection's setup is retried after: a reset
/// or abort, which the server never causes before it has answered anything.
pub fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
    )
}

/// Connect to `addr` with 10 s read/write timeouts; a connect reset or aborted by the
/// kernel is tried again.
pub fn connect(addr: &str) -> TcpStream {
    let mut attempt = 1;
    let stream = loop {
        match TcpStream::connect(addr) {
            Ok(stream) => break stream,
            Err(e) if is_reset(&e) && attempt < SETUP_ATTEMPTS => attempt += 1,
            Err(e) => panic!("connect to {addr}: {e}"),
        }
    };
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

impl Conn<TcpStream> {
    pub fn open(server: &Server) -> Self {
        Conn::new(connect(server.addr()))
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write request");
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Like [`Conn::wait_for_close`], giving up after `limit` instead.
    pub fn wait_for_close_within(&mut self, limit: Duration) -> bool {
        self.stream.set_read_timeout(Some(limit)).unwrap();
        self.wait_for_close()
    }

    /// Read and discard until the peer closes the connection. `true` if it
    /// closed (EOF or reset), `false` if the read timed out first.
    pub fn wait_for_close(&mut self) -> bool {
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) => return false,
                Err(_) => return true,
            }
        }
    }
}

pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl<S: Read> Conn<S> {
    pub fn new(stream: S) -> Self {
        Conn {
            stream,
            buf: Vec::new(),
            received: 0,
        }
    }

    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        // A signal that lands in the read (EINTR) is no answer from the server.
        let n = loop {
            match self.stream.read(&mut chunk) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                read => break read?,
            }
        };
        self.buf.extend_from_slice(&chunk[..n]);
        self.received += n as u64;
        Ok(n)
    }

    /// Read one response head (status line and headers); `body` is empty.
    pub fn read_head(&mut self) -> io::Result<Response> {
        loop {
            if !self.buf.is_empty() {
                let mut headers = [httparse::EMPTY_HEADER; 128];
                let mut parsed = httparse::Response::new(&mut headers);
                match parsed.parse(&self.buf) {
                    Ok(httparse::Status::Complete(len)) => {
                        let response = Response {
                            status: parsed.code.unwrap(),
                            version: parsed.version.unwrap(),
                            reason: parsed.reason.unwrap_or("").to_string(),
                            headers: parsed
                                .headers
                                .iter()
                                .map(|h| (h.name.to_string(), h.value.to_vec()))
                                .collect(),
                            body: Vec::new(),
                        };
                        self.buf.drain(..len);
                        return Ok(response);
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(e) => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!(
                                "unparsable response head ({e}): {:?}",
                                String::from_utf8_lossy(&self.buf)
                            ),
                        ))
                    }
                }
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed before a complete response head (got {:?})",
                        String::from_utf8_lossy(&self.buf)
                    ),
                ));
            }
        }
    }

    /// Read the body belonging to `head` into `head.body`. HEAD responses and
    /// 1xx/204/304 have no body.
    pub fn read_body(&mut self, head: &mut Response, is_head_request: bool) -> io::Result<()> {
        if is_head_request || head.status < 200 || head.status == 204 || head.status == 304 {
            return Ok(());
        }
        head.body = if head.is_chunked() {
            self.read_chunked()?
        } else if let Some(len) = head.content_length() {
            self.read_exact_bytes(len)?
        } else {
            self.read_to_eof()?
        };
        Ok(())
    }

    pub fn try_read_response(&mut self, is_head_request: bool) -> io::Result<Response> {
        let mut response = self.read_head()?;
        self.read_body(&mut response, is_head_request)?;
        Ok(response)
    }

    /// Read one complete response; panics on I/O or parse errors.
    pub fn read_response(&mut self, is_head_request: bool) -> Response {
        self.try_read_response(is_head_request)
            .unwrap_or_else(|e| panic!("reading response: {e}"))
    }

    /// Read exactly `n` bytes (from the buffer first, then the stream).
    pub fn read_exact_bytes(&mut self, n: usize) -> io::Result<Vec<u8>> {
        let from_buf = n.min(self.buf.len());
        let mut out: Vec<u8> = self.buf.drain(..from_buf).collect();
        if out.len() < n {
            let start = out.len();
            out.resize(n, 0);
            self.stream.read_exact(&mut out[start..])?;
        }
        Ok(out)
    }

    pub fn read_to_eof(&mut self) -> io::Result<Vec<u8>> {
        let mut out = std::mem::take(&mut self.buf);
        self.stream.read_to_end(&mut out)?;
        Ok(out)
    }

    fn read_line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let mut line: Vec<u8> = self.buf.drain(..pos + 2).collect();
                line.truncate(pos);
                return Ok(line);
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside chunked body",
                ));
            }
        }
    }

    fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line()?;
            let line = String::from_utf8_lossy(&line);
            let size_text = line.split(';').next().unwrap().trim();
            let size = usize::from_str_radix(size_text, 16).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad chunk size {line:?}"),
                )
            })?;
            if size == 0 {
                // Trailer section, terminated by an empty line.
                while !self.read_line()?.is_empty() {}
                return Ok(body);
            }
            body.extend(self.read_exact_bytes(size)?);
            if !self.read_line()?.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "chunk not followed by CRLF",
                ));
            }
        }
    }
}

/// Parse the first response contained in `bytes`.
pub fn parse_response(bytes: &[u8], is_head_request: bool) -> Response {
    Conn::new(bytes).read_response(is_head_request)
}

/// Connect, write `request` in one go and read until the server closes.
/// A reset after some bytes arrived is treated like EOF; a timeout panics.
/// A reset before any byte arrived is taken for a failed connection setup and the
/// exchange is tried again on a new connection (see [`SETUP_ATTEMPTS`]).
pub fn send_raw_to(addr: &str, request: &[u8]) -> Vec<u8> {
    let mut attempt = 1;
    'setup: loop {
        let mut stream = connect(addr);
        // The server may reject the request and close before reading all of it.
        let _ = stream.write_all(request);
        let mut out = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => return out,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) => panic!(
                    "server neither answered nor closed within {IO_TIMEOUT:?}; got {:?}",
                    String::from_utf8_lossy(&out)
                ),
                Err(_) if !out.is_empty() => return out,
                Err(e) if is_reset(&e) && attempt < SETUP_ATTEMPTS => {
                    attempt += 1;
                    continue 'setup;
                }
                Err(e) => panic!("reading raw response: {e}"),
            }
        }
    }
}

impl Server {
    /// See [`send_raw_to`].
    pub fn send_raw(&self, request: &[u8]) -> Vec<u8> {
        send_raw_to(self.addr(), request)
    }

    /// Send `request` on a fresh connection and parse one response. A reset before
    /// any byte of the response is a failed setup: tried again on a new connection
    /// (see [`SETUP_ATTEMPTS`]).
    pub fn exchange(&self, request: &[u8], is_head_request: bool) -> Response {
        let mut attempt = 1;
        loop {
            let mut conn = Conn::open(self);
            // The server may answer (e.g. 431) and close before reading everything.
            let _ = conn.stream.write_all(request);
            match conn.try_read_response(is_head_request) {
                Ok(response) => return response,
                Err(e) if is_reset(&e) && conn.received == 0 && attempt < SETUP_ATTEMPTS => {
                    attempt += 1;
                }
                Err(e) => panic!("reading response: {e}"),
            }
        }
    }
}

/// Build `METHOD TARGET HTTP/1.1` with Host and `Connection: close` plus `extra` headers.
pub fn request_bytes(method: &str, target: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n");
    for (name, value) in extra {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

/// `METHOD path` with `Connection: close`, plus `extra` headers.
pub fn request(server: &Server, method: &str, path: &str, extra: &[(&str, &str)]) -> Response {
    server.exchange(&request_bytes(method, path, extra), method == "HEAD")
}

/// `GET path HTTP/1.1` with `Host: localhost` and `Connection: close`.
pub fn get(server: &Server, path: &str) -> Response {
    request(server, "GET", path, &[])
}

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// Write `contents` to `root/rel`, creating parent directories.
pub fn write_file(root: &Path, rel: &str, contents: impl AsRef<[u8]>) {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(&path, contents).unwrap();
}

/// A temp dir with an empty `root/` subdirectory; returns (guard, root path).
pub fn temp_root() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    fs::create_dir(&root).unwrap();
    (tmp, root)
}

// ---------------------------------------------------------------------------
// HTTP caching and compression helpers
// ---------------------------------------------------------------------------

/// Send `METHOD path` (with `Connection: close`) and read until the server
/// closes. Returns the parsed head and every byte after it exactly as sent
/// (not de-chunked), so a test can compare `Content-Length` with what arrived.
pub fn request_raw(
    server: &Server,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
) -> (Response, Vec<u8>) {
    let raw = server.send_raw(&request_bytes(method, path, extra));
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no complete response head in {:?}",
                String::from_utf8_lossy(&raw)
            )
        })
        + 4;
    let head = parse_response(&raw[..end], true);
    (head, raw[end..].to_vec())
}

/// `UNIX_EPOCH + secs`.
pub fn unix_time(secs: u64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + Duration::from_secs(secs)
}

/// IMF-fixdate for `t`, e.g. `Tue, 14 Nov 2023 22:13:20 GMT`.
pub fn http_date(t: std::time::SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

/// Set the modification time of `path`, a file or a folder (std only:
/// `File::set_modified`, which needs no write access from the owner).
pub fn set_mtime(path: &Path, t: std::time::SystemTime) {
    fs::File::options()
        .read(path.is_dir())
        .write(!path.is_dir())
        .open(path)
        .unwrap_or_else(|e| panic!("open {path:?} to set its mtime: {e}"))
        .set_modified(t)
        .unwrap_or_else(|e| panic!("set mtime of {path:?}: {e}"));
}

/// Roughly `len` bytes of repetitive (highly compressible) text; `seed` makes
/// different fixtures distinguishable.
pub fn compressible_text(seed: &str, len: usize) -> String {
    let mut out = String::with_capacity(len + 80);
    let mut i = 0usize;
    while out.len() < len {
        out.push_str(&format!(
            "{seed} line {i:05}: the quick brown fox jumps over the lazy dog\n"
        ));
        i += 1;
    }
    out.truncate(len);
    out
}

/// `len` pseudo-random bytes (deterministic per `seed`); every offset differs
/// from its neighbours often enough that a misplaced range shows.
pub fn pseudo_random_bytes(seed: u32, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect()
}

pub fn gzip_compress(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

pub fn brotli_compress(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut writer = brotli::CompressorWriter::new(&mut out, 4096, 9, 22);
        writer.write_all(data).unwrap();
    }
    out
}

pub fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("body is not valid gzip ({} bytes): {e}", data.len()));
    out
}

pub fn unbrotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(data, 4096)
        .read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("body is not valid brotli ({} bytes): {e}", data.len()));
    out
}

pub fn unzstd(data: &[u8]) -> Vec<u8> {
    zstd::decode_all(data)
        .unwrap_or_else(|e| panic!("body is not valid zstd ({} bytes): {e}", data.len()))
}

/// The body with its `Content-Encoding` removed (identity when absent).
pub fn decoded_body(response: &Response) -> Vec<u8> {
    match response
        .header("content-encoding")
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("identity") => response.body.clone(),
        Some("gzip") => gunzip(&response.body),
        Some("br") => unbrotli(&response.body),
        Some("zstd") => unzstd(&response.body),
        Some(other) => panic!("unexpected Content-Encoding {other:?}"),
    }
}

/// Whether some `Vary` field lists `Accept-Encoding` (case-insensitive).
pub fn varies_on_accept_encoding(response: &Response) -> bool {
    varies_on(response, "accept-encoding")
}

/// Whether any `Vary` line names `field`.
pub fn varies_on(response: &Response, field: &str) -> bool {
    response.headers_all("vary").iter().any(|v| {
        v.split(',')
            .any(|token| token.trim().eq_ignore_ascii_case(field))
    })
}

/// The `ETag`, asserted to be present, single and strong (`"etagc*"`).
pub fn strong_etag(response: &Response) -> String {
    let tags = response.headers_all("etag");
    assert_eq!(
        tags.len(),
        1,
        "expected exactly one ETag on the {} response, got {tags:?}",
        response.status
    );
    let tag = tags[0].clone();
    let inner = tag
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("ETag is not a strong quoted entity-tag: {tag:?}"));
    assert!(
        inner
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80),
        "ETag has characters outside etagc: {tag:?}"
    );
    tag
}

// ---------------------------------------------------------------------------
// HTTPS servers, environment, and stderr polling (TLS / HTTP/2 tests)
// ---------------------------------------------------------------------------

/// Extract `host:port` from `wharf: serving /root at http(s)://host:port/`.
fn serving_banner_address(line: &str) -> String {
    let start = line.find("://").expect("banner has a URL") + "://".len();
    let rest = &line[start..];
    let end = rest.find('/').unwrap_or(rest.len());
    rest[..end].trim().to_string()
}

impl Server {
    /// `wharf ROOT --port 0 -b 127.0.0.1 EXTRA_ARGS...`, waiting for the
    /// `wharf: serving ... at http://` or `https://` banner (unlike [`Server::start`],
    /// which only recognises `http://` and would take a `--redirect-http` line for it).
    pub fn start_https(root: &Path, extra_args: &[&str]) -> Server {
        Server::start_with_env(root, extra_args, &[])
    }

    /// [`Server::start_https`] with extra environment variables for the child.
    pub fn start_with_env(root: &Path, extra_args: &[&str], env: &[(&str, &OsStr)]) -> Server {
        let args = loopback_args(root, extra_args);
        Server::spawn_with_env(&args, env)
    }

    /// Start wharf with exactly `args` and `env` added to its environment, and wait
    /// for the `wharf: serving ... at http(s)://HOST:PORT/` banner on stderr.
    pub fn spawn_with_env<S: AsRef<OsStr>>(args: &[S], env: &[(&str, &OsStr)]) -> Server {
        let mut cmd = wharf_command(args, None);
        for (name, value) in env {
            cmd.env(name, value);
        }
        Server::launch(
            cmd,
            |line| line.starts_with("wharf: serving ") && line.contains("://"),
            serving_banner_address,
            true,
        )
    }

    /// Poll stderr until a line satisfies `predicate`; panics after `timeout`.
    pub fn wait_for_stderr(&self, predicate: impl Fn(&str) -> bool, timeout: Duration) -> String {
        poll_until(timeout, || {
            self.stderr
                .lock()
                .unwrap()
                .iter()
                .find(|line| predicate(line))
                .cloned()
        })
        .unwrap_or_else(|| {
            panic!(
                "no matching stderr line within {timeout:?}; stderr: {:?}",
                self.stderr_lines()
            )
        })
    }

    /// Poll until stdout holds at least `n` lines; panics after [`LOG_TIMEOUT`].
    pub fn wait_for_stdout_count(&self, n: usize) -> Vec<String> {
        poll_until(LOG_TIMEOUT, || {
            let lines = self.stdout_lines();
            (lines.len() >= n).then_some(lines)
        })
        .unwrap_or_else(|| {
            panic!(
                "expected at least {n} access-log lines within {LOG_TIMEOUT:?}; stdout: {:?}",
                self.stdout_lines()
            )
        })
    }
}

/// Async HTTP/1.1, HTTP/2 and TLS clients (hyper + rustls) for the TLS and HTTP/2
/// tests. Every network step is bounded by [`IO_TIMEOUT`].
pub mod client {
    use std::future::Future;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::client::conn::{http1, http2};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use rustls::pki_types::{CertificateDer, ServerName};
    use tokio::io::{AsyncRead, AsyncWrite};
    use tokio::net::TcpStream;
    use tokio_rustls::client::TlsStream;

    use super::IO_TIMEOUT;

    /// Await `fut` for at most [`IO_TIMEOUT`]; panics naming `what` when it takes longer.
    pub async fn timed<F: Future>(what: &str, fut: F) -> F::Output {
        tokio::time::timeout(IO_TIMEOUT, fut)
            .await
            .unwrap_or_else(|_| panic!("{what}: no result within {IO_TIMEOUT:?}"))
    }

    /// A complete response, body collected.
    #[derive(Debug)]
    pub struct Reply {
        pub status: u16,
        pub version: http::Version,
        pub headers: http::HeaderMap,
        pub body: Vec<u8>,
    }

    impl Reply {
        /// First value of `name`, lossily decoded.
        pub fn header(&self, name: &str) -> Option<String> {
            self.headers
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        }

        /// Every value of `name`, in order.
        pub fn headers_all(&self, name: &str) -> Vec<String> {
            self.headers
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect()
        }

        pub fn text(&self) -> String {
            String::from_utf8_lossy(&self.body).into_owned()
        }
    }

    /// A request with a body (empty when `body` is empty) and extra headers.
    pub fn build_request(
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> http::Request<Full<Bytes>> {
        let mut builder = http::Request::builder().method(method).uri(
            uri.parse::<http::Uri>()
                .unwrap_or_else(|e| panic!("URI {uri:?}: {e}")),
        );
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder
            .body(Full::new(Bytes::copy_from_slice(body)))
            .expect("build request")
    }

    async fn collect(what: &str, response: http::Response<hyper::body::Incoming>) -> Reply {
        let (parts, body) = response.into_parts();
        let body = timed(what, body.collect())
            .await
            .unwrap_or_else(|e| panic!("{what}: reading the body: {e}"))
            .to_bytes()
            .to_vec();
        Reply {
            status: parts.status.as_u16(),
            version: parts.version,
            headers: parts.headers,
            body,
        }
    }

    pub async fn tcp(addr: &str) -> TcpStream {
        timed("TCP connect", TcpStream::connect(addr))
            .await
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
    }

    /// An HTTP/1 client connection over `io`; its driver runs on a spawned task.
    pub async fn h1_handshake<T>(io: T) -> http1::SendRequest<Full<Bytes>>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = timed("HTTP/1 handshake", http1::handshake(TokioIo::new(io)))
            .await
            .expect("HTTP/1 handshake");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        sender
    }

    /// An HTTP/2 client connection over `io` (prior knowledge, or after ALPN h2).
    pub async fn h2_handshake<T>(io: T) -> http2::SendRequest<Full<Bytes>>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = timed(
            "HTTP/2 handshake",
            http2::handshake(TokioExecutor::new(), TokioIo::new(io)),
        )
        .await
        .expect("HTTP/2 handshake");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        sender
    }

    /// Send `request` on an HTTP/1 connection and collect the response.
    pub async fn h1_send(
        sender: &mut http1::SendRequest<Full<Bytes>>,
        request: http::Request<Full<Bytes>>,
    ) -> Reply {
        let what = format!("HTTP/1 {} {}", request.method(), request.uri());
        timed(&what, sender.ready())
            .await
            .unwrap_or_else(|e| panic!("{what}: connection not ready: {e}"));
        let response = timed(&what, sender.send_request(request))
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        collect(&what, response).await
    }

    /// Send `request` on an HTTP/2 connection and collect the response.
    pub async fn h2_send(
        sender: &mut http2::SendRequest<Full<Bytes>>,
        request: http::Request<Full<Bytes>>,
    ) -> Reply {
        let what = format!("HTTP/2 {} {}", request.method(), request.uri());
        timed(&what, sender.ready())
            .await
            .unwrap_or_else(|e| panic!("{what}: connection not ready: {e}"));
        let response = timed(&what, sender.send_request(request))
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        collect(&what, response).await
    }

    /// A certificate and its key, both PEM, plus the certificate's DER.
    #[derive(Clone)]
    pub struct TestCert {
        pub cert_pem: String,
        pub key_pem: String,
        pub der: CertificateDer<'static>,
    }

    /// A self-signed certificate (ECDSA P-256, PKCS#8 key) for `names`.
    pub fn self_signed(names: &[&str]) -> TestCert {
        let made = rcgen::generate_simple_self_signed(
            names.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        )
        .expect("rcgen self-signed certificate");
        TestCert {
            cert_pem: made.cert.pem(),
            key_pem: made.key_pair.serialize_pem(),
            der: made.cert.der().clone(),
        }
    }

    /// A self-signed certificate for `localhost` and `127.0.0.1`.
    pub fn localhost_cert() -> TestCert {
        self_signed(&["localhost", "127.0.0.1"])
    }

    /// Write `cert.pem` and `key.pem` into `dir`; returns their paths.
    pub fn write_cert(dir: &Path, cert: &TestCert) -> (PathBuf, PathBuf) {
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&c, &cert.cert_pem).unwrap();
        std::fs::write(&k, &cert.key_pem).unwrap();
        (c, k)
    }

    /// A client configuration trusting exactly `roots`, offering `alpn`, limited to
    /// `versions` (both TLS 1.2 and 1.3 when empty).
    pub fn client_config(
        roots: &[CertificateDer<'static>],
        alpn: &[&[u8]],
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<rustls::ClientConfig> {
        let mut store = rustls::RootCertStore::empty();
        for root in roots {
            store.add(root.clone()).expect("add trust anchor");
        }
        // The crate's own crypto provider (whichever of ring / aws-lc-rs rustls is
        // built with), so these helpers do not depend on the server's choice.
        let builder = if versions.is_empty() {
            rustls::ClientConfig::builder()
        } else {
            rustls::ClientConfig::builder_with_protocol_versions(versions)
        };
        let mut config = builder.with_root_certificates(store).with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// TLS handshake with `addr`, verifying the certificate for `server_name` (a DNS
    /// name or an IP address).
    pub async fn try_tls_connect(
        addr: &str,
        config: Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let name = ServerName::try_from(server_name.to_string())
            .unwrap_or_else(|e| panic!("server name {server_name:?}: {e}"));
        let tcp = tcp(addr).await;
        timed(
            "TLS handshake",
            tokio_rustls::TlsConnector::from(config).connect(name, tcp),
        )
        .await
    }

    /// [`try_tls_connect`], panicking on failure.
    pub async fn tls_connect(
        addr: &str,
        config: Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> TlsStream<TcpStream> {
        try_tls_connect(addr, config, server_name)
            .await
            .unwrap_or_else(|e| panic!("TLS handshake with {addr} as {server_name:?}: {e}"))
    }

    /// DER of the leaf certificate the server presented.
    pub fn peer_leaf(stream: &TlsStream<TcpStream>) -> Vec<u8> {
        stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .expect("server presented a certificate")
            .to_vec()
    }

    /// The ALPN protocol the handshake settled on.
    pub fn alpn(stream: &TlsStream<TcpStream>) -> Option<Vec<u8>> {
        stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec)
    }
}

/// An extended CONNECT (RFC 8441) for `path` with `protocol`, on a new h2c
/// connection to `server` (after a first request, by whose answer the server's
/// SETTINGS, which must allow it, have arrived): the answer, and the stream's
/// sending half.
pub async fn h2_extended_connect(
    server: &Server,
    path: &str,
    protocol: &'static str,
) -> (http::Response<h2::RecvStream>, h2::SendStream<bytes::Bytes>) {
    let tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let get = http::Request::get(format!("http://{}/", server.addr()))
        .body(())
        .unwrap();
    let (answer, _) = client.send_request(get, true).unwrap();
    answer.await.unwrap();
    assert!(client.is_extended_connect_protocol_enabled());
    let mut client = client.ready().await.unwrap();
    let mut connect = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(format!("http://{}{path}", server.addr()))
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap();
    connect
        .extensions_mut()
        .insert(h2::ext::Protocol::from_static(protocol));
    let (answer, send) = client.send_request(connect, false).unwrap();
    (answer.await.unwrap(), send)
}

/// The most a loopback connection to wharf should hold in the server's kernel
/// queue for a client that reads nothing: wharf's 128 KiB bound on unsent bytes,
/// which the kernel checks per segment and so may pass by one (up to 64 KiB on
/// loopback), and the little the client's small window let out and left
/// unacknowledged. Without the bound the kernel takes in about a whole 1 MiB file.
pub const UNSENT_BOUND_AND_WINDOW: u64 = 384 * 1024;

/// Bytes the kernel holds for sending (unacknowledged and not yet sent) on the
/// server's end of the loopback connection between `server_port` and
/// `client_port`, from `/proc/net/tcp`.
pub fn server_send_queue(server_port: u16, client_port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let port = |address: &str| u16::from_str_radix(address.rsplit(':').next()?, 16).ok();
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local = port(fields.get(1)?)?;
        let remote = port(fields.get(2)?)?;
        if local != server_port || remote != client_port {
            return None;
        }
        u64::from_str_radix(fields.get(4)?.split(':').next()?, 16).ok()
    })
}

/// Asks 127.0.0.1:`port` for `path` on a connection with a small receive buffer
/// (16 KiB, whatever the host's default) and reads nothing; returns the connection
/// and the largest send queue seen on the server's end until it settled (the same
/// non-empty queue five times in a row: the server can write no more until the
/// client reads). Every sample counts, so a queue that only passes through a large
/// size on its way is seen too.
pub fn queued_for_a_reader_that_reads_nothing(port: u16, path: &str) -> (TcpStream, u64) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    socket.connect(&addr.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let client_port = stream.local_addr().unwrap().port();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .unwrap();
    let (mut seen, mut largest) = ((0, 0), 0);
    poll_until(Duration::from_secs(10), || {
        let now = server_send_queue(port, client_port)?;
        largest = largest.max(now);
        seen = if now == seen.0 {
            (now, seen.1 + 1)
        } else {
            (now, 1)
        };
        (now > 0 && seen.1 >= 5).then_some(())
    })
    .expect("the server's send queue never settled");
    (stream, largest)
}

/// A tmpfs mounted over a folder for a test, unmounted when dropped.
pub struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Mounts a tmpfs with `options` (`"ro,size=64k"`) over `dir`; `None`, said on
/// stderr, where this process may not mount (not root), which CI must allow.
pub fn mount_tmpfs(dir: &Path, options: &str) -> Option<Mounted> {
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", options, "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: mounting a tmpfs needs root (CI runs as root)");
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to mount a tmpfs for this test"
        );
        return None;
    }
    Some(Mounted(dir.to_path_buf()))
}
