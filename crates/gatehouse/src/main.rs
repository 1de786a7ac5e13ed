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

mod inspect;
mod logging;
mod metrics;

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
    /// Explain step by step how a request would travel: DNS, address, listener, TLS, route,
    /// backend, verdict. Exit 0 when it would get through, 1 when not, 2 on a bad config.
    Trace {
        /// `https://host/path?query`, `http://...`, `tcp://host:port`, `udp://host:port` or
        /// `host:port`.
        #[arg(value_name = "TARGET")]
        target: gatehouse_app::trace::Target,
        /// The config file (offline: worked out from the file).
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The client's address (access lists, consistent hashing).
        #[arg(long, value_name = "IP")]
        from: Option<std::net::IpAddr>,
        /// HTTP method (default GET).
        #[arg(long, value_name = "METHOD")]
        method: Option<String>,
        /// An HTTP request header, `Name: value` (repeatable).
        #[arg(short = 'H', long = "header", value_name = "HEADER")]
        headers: Vec<String>,
        /// Also probe endpoints that are not on loopback (a TCP connect to each).
        #[arg(long)]
        probe: bool,
        /// Without `-c`: the running instance's admin endpoint, whose config file and live
        /// endpoint health the trace uses.
        #[arg(long, value_name = "URL", default_value = gatehouse_app::admin::client::DEFAULT_URL)]
        admin: gatehouse_app::admin::client::AdminUrl,
        /// The admin endpoint's bearer token.
        #[arg(long, value_name = "TOKEN", env = "GATEHOUSE_ADMIN_TOKEN")]
        token: Option<String>,
    },
    /// Ask a running instance (its admin endpoint): who holds each VIP, listeners, routes,
    /// every backend endpoint with its health and last change. Exit 1 if nothing answers.
    Status {
        /// The admin endpoint (`admin.listen` of the config).
        #[arg(long, value_name = "URL", default_value = gatehouse_app::admin::client::DEFAULT_URL)]
        admin: gatehouse_app::admin::client::AdminUrl,
        /// Its bearer token (`admin.token`).
        #[arg(
            long,
            value_name = "TOKEN",
            env = "GATEHOUSE_ADMIN_TOKEN",
            hide_env_values = true
        )]
        token: Option<String>,
    },
    /// Stream a running instance's access records (connections, requests, UDP flows,
    /// refusals), one line each, until Ctrl-C.
    Observe {
        /// The admin endpoint (`admin.listen` of the config).
        #[arg(long, value_name = "URL", default_value = gatehouse_app::admin::client::DEFAULT_URL)]
        admin: gatehouse_app::admin::client::AdminUrl,
        /// Its bearer token (`admin.token`).
        #[arg(
            long,
            value_name = "TOKEN",
            env = "GATEHOUSE_ADMIN_TOKEN",
            hide_env_values = true
        )]
        token: Option<String>,
        /// Only this listener (`gateway/listener`).
        #[arg(long, value_name = "NAME")]
        listener: Option<String>,
        /// Only this route.
        #[arg(long, value_name = "NAME")]
        route: Option<String>,
        /// Only this client address.
        #[arg(long, value_name = "IP")]
        client: Option<std::net::IpAddr>,
        /// Only this backend.
        #[arg(long, value_name = "NAME")]
        backend: Option<String>,
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
            let telemetry = std::sync::Arc::new(gatehouse_app::Telemetry::new());
            let _flush_logs_at_exit = init_logging_with(cli.log_format, &cli.log, Some(&telemetry));
            let options = RunOptions {
                config,
                watch: !no_watch,
                telemetry,
            };
            serve(threads, gatehouse_app::run(options))
        }
        Command::Demo { port, tls_port } => {
            let _flush_logs_at_exit = init_logging(cli.log_format, &cli.log);
            serve(None, gatehouse_app::demo::demo(port, tls_port))
        }
        Command::Status { admin, token } => inspect::status(&admin, token.as_deref()),
        Command::Observe {
            admin,
            token,
            listener,
            route,
            client,
            backend,
        } => {
            let filter = gatehouse_app::telemetry::ObserveFilter {
                listener,
                route,
                client,
                backend,
            };
            inspect::observe(&admin, token.as_deref(), &filter)
        }
        Command::Trace {
            target,
            config,
            from,
            method,
            headers,
            probe,
            admin,
            token,
        } => {
            const EXIT_USAGE: u8 = 2;
            let request =
                gatehouse_app::trace::Request::new(target, from, method.as_deref(), &headers);
            let request = match request {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            let Some(config) = config else {
                return inspect::trace_online(&admin, token.as_deref(), &request);
            };
            match gatehouse_app::trace::offline(&config, &request, probe) {
                Ok(out) => {
                    eprint!("{}", out.warnings);
                    print!("{out}");
                    ExitCode::from(if out.ok() { 0 } else { 1 })
                }
                Err(diagnostics) => {
                    eprint!("{}", diagnostics.render());
                    ExitCode::from(EXIT_USAGE)
                }
            }
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
    init_logging_with(format, filter, None)
}

/// [`init_logging`], with the metrics layer (`metrics.rs`) beside the log formatter when
/// `telemetry` is given. Each layer has its own filter: `--log` decides what is written, and
/// the metrics layer sees the access events whatever it says.
#[must_use = "dropping it stops the log writer"]
fn init_logging_with(
    format: LogFormat,
    filter: &str,
    telemetry: Option<&std::sync::Arc<gatehouse_app::Telemetry>>,
) -> Option<logging::FlushOnDrop> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|e| {
        eprintln!("warning: bad log filter `{filter}` ({e}); using `info`");
        tracing_subscriber::EnvFilter::new("info")
    });
    let metrics = telemetry.map(|t| metrics::MetricsLayer::new(std::sync::Arc::clone(t)));
    match logging::pipe(std::io::stderr()) {
        Ok((writer, flush)) => {
            install(format, filter, writer, metrics);
            Some(flush)
        }
        Err(e) => {
            eprintln!(
                "warning: cannot start the log writer thread ({e}); logging to stderr directly"
            );
            install(format, filter, std::io::stderr, metrics);
            None
        }
    }
}

/// The global subscriber: the formatter (text or JSON) writing to `writer`, filtered by
/// `filter`, and the metrics layer with its own filter.
fn install<W>(
    format: LogFormat,
    filter: tracing_subscriber::EnvFilter,
    writer: W,
    metrics: Option<metrics::MetricsLayer>,
) where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let ansi = std::io::stderr().is_terminal();
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => tracing_subscriber::registry()
            .with(fmt.with_filter(filter))
            .with(metrics.map(|m| m.with_filter(metrics::filter())))
            .init(),
        LogFormat::Json => tracing_subscriber::registry()
            .with(fmt.json().flatten_event(true).with_filter(filter))
            .with(metrics.map(|m| m.with_filter(metrics::filter())))
            .init(),
    }
}
