//! `portcullis`: mutual TLS made easy. This binary only parses arguments, calls the
//! libraries and prints; the logic lives in the `portcullis-*` crates.

mod cli;
mod pki;
mod secrets;
mod serve;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Pki(args) => pki::run(args),
        cli::Command::Serve(args) => serve::serve(args),
        cli::Command::Check { config } => serve::check(&config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the whole chain: "cannot issue: wrong passphrase for pki/root.key …"
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
