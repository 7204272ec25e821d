//! Live reload: on SIGHUP and, with `watch_files`, when the configuration or any file it
//! names changes (checked every second; applied after a second of quiet, so a deploy that
//! writes several files reloads once). The new configuration is read and checked
//! completely before it replaces the old one; a broken one changes nothing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use portcullis_pki::Passphrase;

use crate::listener::Current;
use crate::{Config, Gate};

/// What a reload did, for the caller to report.
#[derive(Debug)]
pub enum Event {
    /// Watched files changed; a reload follows.
    FilesChanged,
    Loaded {
        path: PathBuf,
        version: String,
        was: String,
        /// Open connections closed because their certificate is no longer accepted.
        closed: usize,
    },
    Failed {
        /// The version still serving.
        still: String,
        error: String,
    },
}

/// Starts listening for SIGHUP. Call it before the gate says it is listening: from then
/// on a HUP reloads instead of ending the process (the default action of SIGHUP).
pub fn hangups() -> std::io::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
}

/// Runs until the process ends. `listen` is the address the listener really has (reloads
/// cannot move it); `hup` comes from [`hangups`].
pub async fn reload_forever(
    current: Current,
    path: PathBuf,
    listen: SocketAddr,
    pass: Option<Passphrase>,
    mut hup: tokio::signal::unix::Signal,
    report: impl Fn(&Event),
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut seen = watched_state(&current.load());
    let mut pending = false;
    loop {
        let by_signal = tokio::select! {
            _ = hup.recv() => true,
            _ = tick.tick() => false,
        };
        if !by_signal {
            if !current.load().listener().watch_files {
                continue;
            }
            let now = watched_state(&current.load());
            if now != seen {
                // Changed during the last second: wait for it to settle.
                seen = now;
                pending = true;
                continue;
            }
            if !pending {
                continue;
            }
            report(&Event::FilesChanged);
        }
        pending = false;
        report(&reload(&current, &path, listen, pass.clone()).await);
        seen = watched_state(&current.load());
    }
}

/// Size and modification time of every file the gate in force depends on.
fn watched_state(gate: &Gate) -> Vec<Option<(SystemTime, u64)>> {
    gate.files()
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

/// One reload: load and check everything, then swap, then close the connections of
/// certificates the new configuration no longer accepts.
pub async fn reload(
    current: &Current,
    path: &Path,
    listen: SocketAddr,
    pass: Option<Passphrase>,
) -> Event {
    let old = current.load_full();
    let was = old.version().0.to_owned();
    let file = path.to_owned();
    let next = tokio::task::spawn_blocking(move || -> Result<Gate, String> {
        let mut config = Config::from_file(&file).map_err(|e| e.to_string())?;
        config.listener.listen = listen;
        old.reload(config, pass.as_ref()).map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    match next {
        Ok(gate) => {
            let gate = Arc::new(gate);
            current.store(gate.clone());
            Event::Loaded {
                path: path.to_owned(),
                version: gate.version().0.to_owned(),
                was,
                closed: gate.close_revoked(),
            }
        }
        Err(error) => Event::Failed { still: was, error },
    }
}
