//! `portcullis`: mutual TLS made easy. This binary only parses arguments, calls the
//! libraries and prints; the logic lives in the `portcullis-*` crates.

mod cli;
mod docs;
mod doctor;
mod enroll;
mod pki;
mod policy;
mod secrets;
mod serve;

use std::process::ExitCode;

use clap::Parser;

// mimalloc gives freed pages back to the system shortly after; glibc's malloc keeps them in
// its arenas. After a burst of connections goes idle (and gives its HTTP buffers back), the
// gate then holds 18 KiB per idle connection instead of 22; CPU per handshake and request
// is the same (docs/performance.md). Version 2 (the crate's `v2` feature): the Rust crate
// allocates every block through `mi_malloc_aligned`, which in mimalloc 3 takes its
// over-allocating path whenever the size class has no free block at hand (about 400
// instructions per request went there); mimalloc 2 serves alignments up to 16 as plain
// allocations.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    quiet_on_closed_pipe();
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Pki(args) => pki::run(args),
        // The doctor has its own exit codes: 0 healthy, 1 problem found, 2 failure.
        cli::Command::Doctor(args) => return doctor::run(args),
        // `policy test` has its own exit codes: 1 when a case fails.
        cli::Command::Policy(args) => return policy::run(args),
        cli::Command::Enroll(args) => enroll::enroll(args),
        cli::Command::Renew(args) => enroll::renew(args),
        cli::Command::Serve(args) => serve::serve(args),
        cli::Command::Check { config, json } => serve::check(&config, json),
        cli::Command::Completions { shell } => docs::completions(shell),
        cli::Command::Man { out } => docs::man_pages(&out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A command that answers with its exit status (`pki needs-renewal`: 1, not due) has
        // said what it had to say.
        Err(e) if e.downcast_ref::<pki::Exit>().is_some() => {
            ExitCode::from(e.downcast_ref::<pki::Exit>().map_or(2, |x| x.0))
        }
        Err(e) => {
            // `{:#}` prints the whole chain: "cannot issue: wrong passphrase for pki/root.key …"
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `println!` panics when stdout is a pipe the reader has closed (`portcullis pki list
/// --json | head -1`). For a command-line tool that is the reader's choice, not a bug:
/// end quietly with the status a shell gives a process killed by SIGPIPE (128 + 13).
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}
