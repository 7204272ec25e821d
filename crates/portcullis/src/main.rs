//! `portcullis`: mutual TLS made easy. This binary only parses arguments, calls the
//! libraries and prints; the logic lives in the `portcullis-*` crates.

mod cli;
mod docs;
mod doctor;
mod pki;
mod secrets;
mod serve;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Pki(args) => pki::run(args),
        // The doctor has its own exit codes: 0 healthy, 1 problem found, 2 failure.
        cli::Command::Doctor(args) => return doctor::run(args),
        cli::Command::Serve(args) => serve::serve(args),
        cli::Command::Check { config } => serve::check(&config),
        cli::Command::Completions { shell } => docs::completions(shell),
        cli::Command::Man { out } => docs::man_pages(&out),
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
