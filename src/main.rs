//! The `wharf` command: gather the settings (command line, environment, config file),
//! run the server, and turn every startup failure into one line on stderr and a
//! non-zero exit.

use std::io::Write as _;
use std::process::ExitCode;

use wharf::config::explain;
use wharf::config::file::{self, LayerError};

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "hash-password") {
        return match args.get(2).map(|a| a.to_str()) {
            None => hash_password(),
            Some(Some("-h" | "--help")) => {
                let _ = writeln!(std::io::stdout(), "{HASH_PASSWORD_HELP}");
                ExitCode::SUCCESS
            }
            // Not echoed: it may well be the password.
            Some(_) => {
                fail("hash-password takes no arguments; it reads the password from standard input")
            }
        };
    }
    if args.get(1).is_some_and(|a| a == "completions") {
        return completions(args.get(2).and_then(|a| a.to_str()));
    }
    if args.get(1).is_some_and(|a| a == "man") {
        return man();
    }
    let reload_args = args.clone();
    let layered = match file::parse(args) {
        Ok(layered) => layered,
        Err(LayerError::Clap(e)) => return usage_error(e),
        Err(LayerError::File(message)) => return fail(&message),
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours only on a terminal: journald and log collectors get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WHARF_LOG")
                // rustls warns of what clients send (an IP address as the TLS server
                // name, as some clients do): once per connection, a client could fill
                // stderr. Its errors still show, and WHARF_LOG can ask for more.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rustls=error")),
        )
        .event_format(StderrStyle)
        .init();
    let explain = layered.cli.explain;
    let sources = layered.sources;
    let mut config = match layered.cli.into_config() {
        Ok(config) => config,
        Err(message) => return fail(&file::attribute(&message, &sources)),
    };
    config.site = layered.site;
    if explain {
        let _ = write!(std::io::stdout(), "{}", explain::explain(&config, &sources));
        // Then what starting would find: a root that is no folder, a certificate
        // that does not load.
        return match wharf::check(&config) {
            Ok(warnings) => {
                for warning in warnings {
                    let _ = writeln!(std::io::stdout(), "warning: {warning}");
                }
                ExitCode::SUCCESS
            }
            Err(message) => fail(&message),
        };
    }
    // SIGHUP reads everything again, as at the start.
    let reload: wharf::Reload = Box::new(move || {
        let layered = file::parse(reload_args.clone()).map_err(|e| match e {
            LayerError::Clap(e) => e.to_string().lines().next().unwrap_or_default().to_string(),
            LayerError::File(message) => message,
        })?;
        let sources = layered.sources;
        let mut config = layered
            .cli
            .into_config()
            .map_err(|message| file::attribute(&message, &sources))?;
        config.site = layered.site;
        Ok(config)
    });
    match wharf::run(config, reload) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

/// `wharf completions SHELL`: the shell's completion script for every option, from
/// the same clap definition that parses them.
fn completions(shell: Option<&str>) -> ExitCode {
    use clap::CommandFactory;
    use clap_complete::Shell;
    let Some(shell) = shell.and_then(|s| s.parse::<Shell>().ok()) else {
        return fail("usage: wharf completions bash|zsh|fish|elvish|powershell");
    };
    use clap_complete::Generator;
    let mut command = wharf::config::cli::Cli::command();
    command.set_bin_name("wharf");
    command.build();
    match shell.try_generate(&command, &mut std::io::stdout()) {
        // A pager or `head` that stopped reading is not a failure.
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => fail(&format!("cannot write the completions: {e}")),
    }
}

/// `wharf man`: the manual page (roff), from the clap definition.
fn man() -> ExitCode {
    use clap::CommandFactory;
    let page = clap_mangen::Man::new(wharf::config::cli::Cli::command());
    match page.render(&mut std::io::stdout()) {
        // A pager or `head` that stopped reading is not a failure.
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => fail(&format!("cannot write the manual page: {e}")),
    }
}

const HASH_PASSWORD_HELP: &str = "\
Read a password and print its argon2id hash, for the [users] table of a configuration file.

Usage: wharf hash-password

The password is read from the terminal without echoing it, twice (the two must match),
or as one line of standard input:  echo 'secret' | wharf hash-password";

/// `wharf hash-password`: reads a password (one line of standard input; on a terminal
/// asked twice without echo, and refused when the two differ) and prints its argon2id
/// hash for the `[users]` table.
fn hash_password() -> ExitCode {
    use std::io::IsTerminal;
    let interactive = std::io::stdin().is_terminal();
    let password = match read_password(interactive.then_some("Password: ")) {
        Ok(password) => password,
        Err(e) => return fail(&format!("cannot read the password: {e}")),
    };
    if password.is_empty() {
        return fail("no password given (type it, or pipe it on standard input)");
    }
    if interactive {
        match read_password(Some("Same password again: ")) {
            Ok(again) if again == password => {}
            Ok(_) => return fail("the two passwords differ; nothing was hashed"),
            Err(e) => return fail(&format!("cannot read the password: {e}")),
        }
    }
    match wharf::site::auth::hash_password(&password) {
        Ok(hash) => {
            let _ = writeln!(std::io::stdout(), "{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("cannot hash the password: {e}")),
    }
}

/// One line of standard input without its line ending. With a `prompt` (standard input
/// is a terminal), the prompt goes to stderr and the terminal does not echo the line.
fn read_password(prompt: Option<&str>) -> std::io::Result<String> {
    use std::io::{BufRead, Write};
    let stdin = std::io::stdin();
    let mut echo_off = None;
    if let Some(prompt) = prompt {
        let _ = write!(std::io::stderr(), "{prompt}");
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
        wharf::say!();
    }
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// `--help` and `--version` as clap prints them; a usage error as one line like
/// every other (`wharf: invalid value 'abc' for '--port <PORT>': …`), exit status 2.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit()
    }
    // clap's first paragraph, on one line (a list of missing arguments included).
    let rendered = e.render().to_string();
    let paragraph: Vec<&str> = rendered
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let joined = paragraph.join(" ");
    let message = joined.strip_prefix("error: ").unwrap_or(&joined);
    wharf::say!("wharf: {message} (see wharf --help)");
    ExitCode::from(2)
}

fn fail(message: &str) -> ExitCode {
    wharf::say!("wharf: {message}");
    ExitCode::FAILURE
}

/// Diagnostics (tracing events) in the style of every other line wharf writes to
/// stderr: `wharf: warning: …`, `wharf: error: …`; `wharf: debug: target: …` with
/// `WHARF_LOG=debug`. No timestamp (the terminal or the service manager adds one) and no
/// colours.
struct StderrStyle;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for StderrStyle
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        use tracing::Level;
        let meta = event.metadata();
        let level = match *meta.level() {
            Level::ERROR => "error: ",
            Level::WARN => "warning: ",
            Level::INFO => "",
            Level::DEBUG => "debug: ",
            Level::TRACE => "trace: ",
        };
        write!(writer, "wharf: {level}")?;
        // Whose diagnostic it is matters once other crates' are shown.
        if *meta.level() > Level::INFO {
            write!(writer, "{}: ", meta.target())?;
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
