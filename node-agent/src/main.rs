//! The `spore` command line.

mod cli;

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let parsed = cli::Cli::parse();
    match cli::run(parsed) {
        Ok(code) => code,
        // A closed pipe (`spore graph | head`) is the reader's choice, not a failure.
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("spore: {e:#}");
            ExitCode::from(2)
        }
    }
}
