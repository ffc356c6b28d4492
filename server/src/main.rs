//! The `tollgate` binary: parse the command line, set up logging, hand over to the library.

use std::{net::TcpListener, process::ExitCode};

use clap::Parser;
use tollgate::{
    app::{self, ServeOptions},
    cli::{self, Cli, Command},
    config::Config,
};

/// Why: the proxy path allocates many small short-lived buffers (headers, bodies, JSON keys); mimalloc is
/// faster than glibc malloc there. The `mimalloc` feature (on by default) selects it; docs/benchmarks.md
/// measures both.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::CheckConfig { file }) => return check_config(file),
        Some(Command::Migrate { config }) => return migrate(config.as_deref()),
        None => {}
    }
    let env = |name: &str| std::env::var(name).ok();
    // The config is read before logging starts: it may set the level and the format.
    let config = match (&cli.config, &cli.model) {
        (Some(path), _) => Config::load_file(path),
        (None, Some(model)) => Config::quick(model, &env),
        (None, None) => {
            eprintln!("tollgate: nothing to serve: pass --config FILE or --model PROVIDER/MODEL (see --help)");
            return ExitCode::FAILURE;
        }
    };
    let config = match config {
        Ok(config) => config,
        Err(e) => {
            eprintln!("tollgate: config error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let json = cli.json_logs || config.logging.json;
    let _log_guard = tollgate::telemetry::init(json, config.logging.level.as_deref());
    match serve(cli, config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("tollgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(file: &std::path::Path) -> ExitCode {
    let report = Config::load_file(file).and_then(|c| cli::check_config_report(&c));
    match report {
        Ok(text) => {
            #[expect(clippy::print_stdout, reason = "check-config's report is its output")]
            {
                print!("{text}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tollgate: config error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn migrate(file: Option<&std::path::Path>) -> ExitCode {
    let env = |name: &str| std::env::var(name).ok();
    let config = match file {
        Some(path) => Config::load_file(path),
        None => Config::load_str("", &env),
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tollgate: config error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match actix_rt::System::new().block_on(cli::migrate(&config)) {
        Ok(report) => {
            #[expect(clippy::print_stdout, reason = "migrate's report is its output")]
            {
                print!("{report}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tollgate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(cli: Cli, config: Config) -> anyhow::Result<()> {
    let addr = format!("{}:{}", cli.host, cli.port);
    let listener = TcpListener::bind(&addr).map_err(|e| anyhow::anyhow!("cannot bind {addr}: {e}"))?;
    let options = ServeOptions {
        workers: cli.workers,
        config_path: cli.config.clone(),
        allow_example_master_key: cli.allow_example_master_key,
    };
    actix_rt::System::new().block_on(app::run(config, listener, options))?;
    Ok(())
}
