//! `gatehouse run`: load, serve, reload, drain.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gatehouse_config::{Config, ConfigDiff, Diagnostics, Loaded, Source};
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::cluster::{Cluster, load};
use crate::shutdown::{Request, Signals};
use crate::supervisor::{ApplyError, Supervisor};
use crate::telemetry::Telemetry;

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
    /// What the admin endpoint reports besides live state (the binary's tracing layer feeds
    /// it; reload outcomes are recorded here).
    pub telemetry: Arc<Telemetry>,
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
    let mut source = read(&options.config).map_err(RunError::Config)?;
    let (loaded, _) = load(&source, None).map_err(RunError::Config)?;
    log_warnings(&loaded);
    let mut supervisor = Supervisor::start(loaded.config, Arc::clone(&options.telemetry))
        .await
        .map_err(RunError::Apply)?;
    options.telemetry.config_loaded(&options.config);
    let mut cluster = Cluster::default();
    cluster.follow(&supervisor);

    // Watch before saying we run: a change made right after startup must not be missed.
    let (tx, mut changes) = mpsc::unbounded_channel::<()>();
    let mut watcher = if options.watch {
        let mut w = Watch::new(tx).map_err(RunError::Setup)?;
        w.follow(&options.config, supervisor.config())
            .map_err(RunError::Setup)?;
        Some(w)
    } else {
        None
    };
    // The last reload error reported for a file change, so a broken file is reported once,
    // not at every event until it is fixed.
    let mut last_error: Option<String> = None;
    tracing::info!(
        config = %options.config.display(),
        "gatehouse is running; {} reloads it",
        if options.watch { "SIGHUP or editing the file" } else { "SIGHUP" }
    );

    let reason = loop {
        tokio::select! {
            request = signals.next() => match request {
                Request::Reload => {
                    reload(&mut supervisor, &options, Trigger::Signal, &mut source, &mut cluster).await;
                    last_error = None;
                }
                Request::Stop(name) => break name,
            },
            Some(()) = changes.recv() => {
                tokio::time::sleep(SETTLE).await;
                while changes.try_recv().is_ok() {}
                let error = reload(&mut supervisor, &options, Trigger::Files(&last_error), &mut source, &mut cluster).await;
                last_error = error;
            }
            rendered = cluster.changed() => {
                cluster.take(rendered);
                apply_cluster(&mut supervisor, &options, &source, &mut cluster).await;
            }
        }
        if let Some(w) = watcher.as_mut()
            && let Err(e) = w.follow(&options.config, supervisor.config())
        {
            tracing::warn!("{e}; changes there will need SIGHUP");
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

/// What started a reload.
enum Trigger<'a> {
    /// SIGHUP: always reported, even when nothing changed.
    Signal,
    /// A file event in a watched directory; carries the error last reported for one, which is
    /// not repeated.
    Files(&'a Option<String>),
}

/// The config file as a [`Source`].
fn read(path: &Path) -> Result<Source, Diagnostics> {
    std::fs::read_to_string(path)
        .map(|text| Source::new(path.display().to_string(), text))
        .map_err(|e| Diagnostics::unreadable(path, &e))
}

/// Reads, validates and applies the config again (with the files it names, and the cluster's
/// objects); on any error the running config stays. Returns the error, if any.
async fn reload(
    supervisor: &mut Supervisor,
    options: &RunOptions,
    trigger: Trigger<'_>,
    source: &mut Source,
    cluster: &mut Cluster,
) -> Option<String> {
    let path: &Path = &options.config;
    let why = match trigger {
        Trigger::Signal => "SIGHUP",
        Trigger::Files(_) => "file changed",
    };
    let error = match read(path).and_then(|s| cluster.load(&s).map(|l| (s, l))) {
        Ok((fresh, (loaded, rejected))) => {
            if matches!(trigger, Trigger::Files(_)) && **supervisor.config() == loaded.config {
                // An event that changed nothing we use (a temp file, a touch).
                *source = fresh;
                return None;
            }
            log_warnings(&loaded);
            match supervisor.apply(loaded.config).await {
                Ok(changes) => {
                    *source = fresh;
                    log_applied(why, &changes);
                    options.telemetry.reload_done(why, Ok(()));
                    cluster.applied(supervisor.config(), rejected);
                    cluster.follow(supervisor);
                    return None;
                }
                Err(e) => e.to_string(),
            }
        }
        Err(diagnostics) => {
            // Mid-swap, a file can be briefly missing: the next event brings it back.
            format!(
                "{} error(s): {}",
                diagnostics.error_count(),
                diagnostics.one_line()
            )
        }
    };
    options.telemetry.reload_done(why, Err(&error));
    if !matches!(trigger, Trigger::Files(Some(last)) if *last == error) {
        tracing::error!(
            trigger = why,
            "reload failed, the running config stays: {error}"
        );
    }
    Some(error)
}

/// Compiles the file as last loaded with the cluster's new rendering and applies it; on an
/// error the running config stays.
async fn apply_cluster(
    supervisor: &mut Supervisor,
    options: &RunOptions,
    source: &Source,
    cluster: &mut Cluster,
) {
    const WHY: &str = "kubernetes";
    let error = match cluster.load(source) {
        Ok((loaded, rejected)) => {
            if **supervisor.config() == loaded.config {
                cluster.applied(supervisor.config(), rejected);
                return;
            }
            match supervisor.apply(loaded.config).await {
                Ok(changes) => {
                    log_applied(WHY, &changes);
                    options.telemetry.reload_done(WHY, Ok(()));
                    cluster.applied(supervisor.config(), rejected);
                    cluster.follow(supervisor);
                    return;
                }
                Err(e) => e.to_string(),
            }
        }
        Err(diagnostics) => format!(
            "{} error(s): {}",
            diagnostics.error_count(),
            diagnostics.one_line()
        ),
    };
    options.telemetry.reload_done(WHY, Err(&error));
    tracing::error!(
        trigger = WHY,
        "the cluster's changes could not be applied, the running config stays: {error}"
    );
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

/// Watches the directories holding the config file and every file it names (not the files:
/// editors replace a file by rename, Kubernetes swaps a symlink beside it, ACME clients
/// repoint `live/` symlinks). Every event sends a nudge; the reader decides whether anything
/// really changed.
struct Watch {
    watcher: notify::RecommendedWatcher,
    dirs: BTreeSet<PathBuf>,
}

impl Watch {
    fn new(tx: mpsc::UnboundedSender<()>) -> Result<Watch, String> {
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok_and(|e| !e.kind.is_access()) {
                let _ = tx.send(());
            }
        })
        .map_err(|e| format!("cannot watch the config file: {e}"))?;
        Ok(Watch {
            watcher,
            dirs: BTreeSet::new(),
        })
    }

    /// Watches the directories of `config_file` and of the files `config` names; stops
    /// watching directories no longer needed.
    fn follow(&mut self, config_file: &Path, config: &Config) -> Result<(), String> {
        let wanted: BTreeSet<PathBuf> = std::iter::once(config_file.to_path_buf())
            .chain(config.files())
            .map(|f| match f.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            })
            .collect();
        for gone in self.dirs.difference(&wanted) {
            let _ = self.watcher.unwatch(gone);
        }
        self.dirs.retain(|d| wanted.contains(d));
        let mut result = Ok(());
        for dir in wanted {
            if self.dirs.contains(&dir) {
                continue;
            }
            match self.watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.dirs.insert(dir);
                }
                // Retried at the next reload.
                Err(e) => result = Err(format!("cannot watch {}: {e}", dir.display())),
            }
        }
        result
    }
}
