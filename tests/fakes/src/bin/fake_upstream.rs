//! `fake-upstream`: the fake OpenAI-compatible server as a process, for the SDK tests and the benchmark.
//! Prints `listening on http://HOST:PORT` as its first line, then serves until killed.

use std::{io::Write, net::TcpListener};

use clap::Parser;
use tollgate_fakes::{server, Recorder};

#[derive(Parser)]
#[command(about = "Fake OpenAI-compatible upstream for tollgate's tests and benchmarks")]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 0)]
    port: u16,
    #[arg(long, default_value_t = 1)]
    workers: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = TcpListener::bind((args.host.as_str(), args.port))?;
    let addr = listener.local_addr()?;
    let mut out = std::io::stdout();
    writeln!(out, "listening on http://{addr}")?;
    out.flush()?;
    actix_rt::System::new().block_on(async move {
        let srv = server(listener, Recorder::default(), args.workers)?;
        // The fake holds nothing worth draining: SIGTERM exits at once, even with `hang` requests in flight.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        actix_rt::spawn(async move {
            term.recv().await;
            std::process::exit(0);
        });
        srv.await
    })?;
    Ok(())
}
