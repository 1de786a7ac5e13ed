//! `gatehouse run`: load, serve, reload, drain.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gatehouse_config::{ConfigDiff, Diagnostics, Loaded, load_file};
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::shutdown::{Request, Signals};
use crate::supervisor::{ApplyError, Supervisor};

/// How long file events are gathered before the file is read again: an editor's save is
/// several events (write temp file, rename, chmod), a ConfigMap swap two renames.
const SETTLE: Duration = Duration::from_millis(150);

/// What `gatehouse run` needs to know.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The config file.
    pub config: PathBuf,
    /// Watch the file and reload when it changes (SIGHUP always reloads).
    pub watch: bool,
}

/// Why `gatehouse run` stopped with an error.
#[derive(Debug)]
pub enum RunError {
    /// The config is invalid.
    Config(Diagnostics),
    /// The config could not be put in place (a port in use, say).
    Apply(ApplyError),
    /// Signals or the file watcher could not be set up.
    Setup(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Config(d) => write!(f, "{d}"),
            RunError::Apply(e) => write!(f, "{e}"),
            RunError::Setup(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for RunError {}

/// Logs the warnings of a config that loaded.
pub(crate) fn log_warnings(loaded: &Loaded) {
    for w in loaded.warnings.warnings() {
        tracing::warn!("{}", w.one_line(&loaded.warnings.source));
    }
}

/// Serves the config at `options.config` until SIGTERM/SIGINT.
pub async fn run(options: RunOptions) -> Result<(), RunError> {
    let mut signals = Signals::install()
        .map_err(|e| RunError::Setup(format!("cannot install signal handlers: {e}")))?;
    let loaded = load_file(&options.config).map_err(RunError::Config)?;
    log_warnings(&loaded);
    let mut last_text = std::fs::read_to_string(&options.config).unwrap_or_default();
    let mut supervisor = Supervisor::start(loaded.config)
        .await
        .map_err(RunError::Apply)?;

    // Watch before saying we run: a change made right after startup must not be missed.
    let (tx, mut changes) = mpsc::unbounded_channel::<()>();
    let _watcher = if options.watch {
        Some(watch_directory(&options.config, tx).map_err(RunError::Setup)?)
    } else {
        None
    };
    tracing::info!(
        config = %options.config.display(),
        "gatehouse is running; {} reloads it",
        if options.watch { "SIGHUP or editing the file" } else { "SIGHUP" }
    );

    let reason = loop {
        tokio::select! {
            request = signals.next() => match request {
                Request::Reload => {
                    reload(&mut supervisor, &options.config, "SIGHUP").await;
                    last_text = std::fs::read_to_string(&options.config).unwrap_or_default();
                }
                Request::Stop(name) => break name,
            },
            Some(()) = changes.recv() => {
                tokio::time::sleep(SETTLE).await;
                while changes.try_recv().is_ok() {}
                match std::fs::read_to_string(&options.config) {
                    Ok(text) if text == last_text => {}
                    Ok(text) => {
                        last_text = text;
                        reload(&mut supervisor, &options.config, "file changed").await;
                    }
                    // Mid-swap, or deleted: the next event (or SIGHUP) brings it back.
                    Err(e) => tracing::debug!(error = %e, "config file not readable right now"),
                }
            }
        }
    };
    drain(supervisor, reason, &mut signals).await;
    Ok(())
}

/// Drains open connections; a second SIGTERM/SIGINT stops at once.
pub(crate) async fn drain(supervisor: Supervisor, reason: &str, signals: &mut Signals) {
    tracing::info!(signal = reason, "shutting down: no new connections");
    tokio::select! {
        cut = supervisor.shutdown() => {
            if cut > 0 {
                tracing::warn!(cut_connections = cut, "stopped");
            } else {
                tracing::info!("stopped");
            }
        }
        second = signals.next_stop() => tracing::warn!(signal = second, "second signal: stopping now"),
    }
}

/// Reads, validates and applies the config again; on any error the running config stays.
async fn reload(supervisor: &mut Supervisor, path: &Path, why: &str) {
    let loaded = match load_file(path) {
        Ok(loaded) => loaded,
        Err(diagnostics) => {
            tracing::error!(
                trigger = why,
                errors = diagnostics.error_count(),
                "reload failed, the running config stays: {}",
                diagnostics.one_line()
            );
            return;
        }
    };
    log_warnings(&loaded);
    match supervisor.apply(loaded.config).await {
        Ok(changes) => log_applied(why, &changes),
        Err(e) => tracing::error!(
            trigger = why,
            "reload failed, the running config stays: {e}"
        ),
    }
}

fn log_applied(why: &str, d: &ConfigDiff) {
    if d.is_empty() {
        tracing::info!(trigger = why, "config reloaded: nothing changed");
        return;
    }
    tracing::info!(
        trigger = why,
        listeners_opened = d.bind.len(),
        listeners_closed = d.close.len(),
        listeners_updated = d.update.len(),
        listeners_kept = d.keep.len(),
        backends_added = ?d.backends_added,
        backends_removed = ?d.backends_removed,
        backends_changed = ?d.backends_changed,
        "config reloaded"
    );
}

/// Watches the directory holding `file` (not the file: editors replace it by rename, and a
/// Kubernetes ConfigMap swaps a symlink beside it). Every event sends a nudge; the reader
/// decides whether the file really changed.
fn watch_directory(
    file: &Path,
    tx: mpsc::UnboundedSender<()>,
) -> Result<notify::RecommendedWatcher, String> {
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            let _ = tx.send(());
        }
    })
    .map_err(|e| format!("cannot watch the config file: {e}"))?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    Ok(watcher)
}
