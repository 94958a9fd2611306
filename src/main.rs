//! The `wharf` command: gather the settings (command line, environment, config file),
//! run the server, and turn every startup failure into one line on stderr and a
//! non-zero exit.

use std::process::ExitCode;

use wharf::config_file::{self, LayerError};

fn main() -> ExitCode {
    let layered = match config_file::parse(std::env::args_os().collect()) {
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
        .init();
    let explain = layered.cli.explain;
    let sources = layered.sources;
    let mut config = match layered.cli.into_config() {
        Ok(config) => config,
        Err(message) => return fail(&message),
    };
    config.site = layered.site;
    if explain {
        print!("{}", config_file::explain(&config, &sources));
        return ExitCode::SUCCESS;
    }
    match wharf::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("wharf: {message}");
    ExitCode::FAILURE
}
