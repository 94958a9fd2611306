//! The `wharf` command: gather the settings (command line, environment, config file),
//! run the server, and turn every startup failure into one line on stderr and a
//! non-zero exit.

use std::process::ExitCode;

use wharf::config::explain;
use wharf::config::file::{self, LayerError};

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "hash-password") {
        return match args.get(2).map(|a| a.to_str()) {
            None => hash_password(),
            Some(Some("-h" | "--help")) => {
                println!("{HASH_PASSWORD_HELP}");
                ExitCode::SUCCESS
            }
            // Not echoed: it may well be the password.
            Some(_) => {
                fail("hash-password takes no arguments; it reads the password from standard input")
            }
        };
    }
    let layered = match file::parse(args) {
        Ok(layered) => layered,
        // Usage errors, --help and --version, worded and exited by clap.
        Err(LayerError::Clap(e)) => e.exit(),
        Err(LayerError::File(message)) => return fail(&message),
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WHARF_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let explain = layered.cli.explain;
    let sources = layered.sources;
    let mut config = match layered.cli.into_config() {
        Ok(config) => config,
        Err(message) => return fail(&message),
    };
    config.site = layered.site;
    if explain {
        print!("{}", explain::explain(&config, &sources));
        // Then what starting would find: a root that is no folder, a certificate
        // that does not load.
        return match wharf::check(&config) {
            Ok(warnings) => {
                for warning in warnings {
                    println!("warning: {warning}");
                }
                ExitCode::SUCCESS
            }
            Err(message) => fail(&message),
        };
    }
    match wharf::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

const HASH_PASSWORD_HELP: &str = "\
Read a password and print its argon2id hash, for the [users] table of a configuration file.

Usage: wharf hash-password

The password is read from the terminal without echoing it, or as one line of standard
input:  echo 'secret' | wharf hash-password";

/// `wharf hash-password`: reads a password (one line of standard input, not echoed
/// on a terminal) and prints its argon2id hash for the `[users]` table.
fn hash_password() -> ExitCode {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    let mut echo_off = None;
    if interactive {
        eprint!("Password: ");
        let _ = std::io::stderr().flush();
        if let Ok(mut term) = rustix::termios::tcgetattr(&stdin) {
            let saved = term.clone();
            term.local_modes.remove(rustix::termios::LocalModes::ECHO);
            if rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &term)
                .is_ok()
            {
                echo_off = Some(saved);
            }
        }
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(saved) = echo_off {
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &saved);
        eprintln!();
    }
    if let Err(e) = read {
        return fail(&format!("cannot read the password: {e}"));
    }
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return fail("no password given (type it, or pipe it on standard input)");
    }
    match wharf::site::auth::hash_password(password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("cannot hash the password: {e}")),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("wharf: {message}");
    ExitCode::FAILURE
}
