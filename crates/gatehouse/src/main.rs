//! The `gatehouse` binary: parses the command line, sets up logging and the runtime, and maps
//! outcomes to exit codes. Everything else lives in `gatehouse-app`.

/// A proxy allocates and frees many small buffers per request and connection; mimalloc's
/// thread-local free lists cost a fraction of glibc malloc's there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use gatehouse_app::{RunError, RunOptions};

mod logging;

/// Exit code for an invalid config or a config that cannot be put in place.
const EXIT_CONFIG: u8 = 1;
/// Exit code for a failure of the process itself (runtime, signals).
const EXIT_SOFTWARE: u8 = 70;

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "The front door of a homelab or bare-metal cluster: one binary, one config file.",
    after_help = "Start with `gatehouse demo`. The config reference is docs/config.md."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log filter, e.g. `info`, `debug`, `info,gatehouse::access=warn` (RUST_LOG works too).
    #[arg(long, global = true, env = "RUST_LOG", default_value = "info")]
    log: String,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a config file; reload it on SIGHUP or when it changes; drain on SIGTERM/SIGINT.
    Run {
        /// The config file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// Worker threads (default: one per CPU).
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
        /// Do not watch the file; reload only on SIGHUP.
        #[arg(long)]
        no_watch: bool,
    },
    /// Validate a config file and print what it would serve; exit 1 if it has errors.
    Check {
        /// The config file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Run a gateway on 127.0.0.1 in front of two built-in backends, no config file needed.
    Demo {
        /// Port of the demo's HTTP gateway (a free one is used if it is taken).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Port of the demo's HTTPS gateway (a free one is used if it is taken).
        #[arg(long, default_value_t = 8443)]
        tls_port: u16,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Run {
            config,
            threads,
            no_watch,
        } => {
            let _flush_logs_at_exit = init_logging(cli.log_format, &cli.log);
            let options = RunOptions {
                config,
                watch: !no_watch,
            };
            serve(threads, gatehouse_app::run(options))
        }
        Command::Demo { port, tls_port } => {
            let _flush_logs_at_exit = init_logging(cli.log_format, &cli.log);
            serve(None, gatehouse_app::demo::demo(port, tls_port))
        }
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    match gatehouse_config::load_file(path) {
        Ok(loaded) => {
            for w in loaded.warnings.warnings() {
                eprint!("{}", w.render(&loaded.warnings.source));
            }
            print!("{}", loaded.config.summary());
            print!("{}", gatehouse_app::interface_report(&loaded.config));
            println!("{}: ok", path.display());
            ExitCode::SUCCESS
        }
        Err(diagnostics) => {
            eprint!("{}", diagnostics.render());
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// Raises the soft limit on open files to the hard limit, as nginx and HAProxy do: every
/// proxied connection takes two descriptors, and the common soft default of 1024 would cap a
/// gateway at about 500 connections, far below `maxConnections`.
fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::info!(from = soft, to = hard, "raised the open-file limit"),
            Err(e) => tracing::warn!(limit = soft, error = %e, "cannot raise the open-file limit"),
        },
        Ok((soft, _)) => tracing::debug!(limit = soft, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot read the open-file limit"),
    }
}

fn serve(threads: Option<usize>, main: impl Future<Output = Result<(), RunError>>) -> ExitCode {
    raise_open_file_limit();
    let runtime = match threads {
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n.max(1))
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_SOFTWARE);
        }
    };
    match runtime.block_on(main) {
        Ok(()) => ExitCode::SUCCESS,
        Err(RunError::Config(diagnostics)) => {
            eprint!("{}", diagnostics.render());
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e @ RunError::Apply(_)) => {
            tracing::error!("{e}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e @ RunError::Setup(_)) => {
            tracing::error!("{e}");
            ExitCode::from(EXIT_SOFTWARE)
        }
    }
}

/// Sets up the global subscriber; the returned guard flushes queued lines when `main` ends.
#[must_use = "dropping it stops the log writer"]
fn init_logging(format: LogFormat, filter: &str) -> Option<logging::FlushOnDrop> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|e| {
        eprintln!("warning: bad log filter `{filter}` ({e}); using `info`");
        tracing_subscriber::EnvFilter::new("info")
    });
    let ansi = std::io::stderr().is_terminal();
    let (writer, flush) = match logging::pipe(std::io::stderr()) {
        Ok((writer, flush)) => (writer, flush),
        Err(e) => {
            eprintln!(
                "warning: cannot start the log writer thread ({e}); logging to stderr directly"
            );
            let builder = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(ansi);
            match format {
                LogFormat::Text => builder.init(),
                LogFormat::Json => builder.json().flatten_event(true).init(),
            }
            return None;
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Some(flush)
}
