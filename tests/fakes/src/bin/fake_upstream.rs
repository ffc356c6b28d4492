//! `fake-upstream`: the fake OpenAI-compatible server as a process, for the SDK tests and the benchmark.
//! Prints `listening on http://HOST:PORT` as its first line, then serves until killed.

use clap::Parser;
use tollgate_fakes::{run_process, server, Recorder};

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
    run_process(&args.host, args.port, |listener| server(listener, Recorder::default(), args.workers))?;
    Ok(())
}
