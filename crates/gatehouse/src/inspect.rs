//! `gatehouse status` and `gatehouse observe`: ask a running instance's admin endpoint and
//! print what it says. Exit 0 when it answered (observe: until Ctrl-C), 1 when it did not, or
//! refused the token.

use std::io::Write;
use std::process::ExitCode;

use gatehouse_app::admin::client::{self, AdminUrl};
use gatehouse_app::telemetry::ObserveFilter;

/// Exit code when the admin endpoint cannot be asked.
const EXIT_UNREACHABLE: u8 = 1;

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::from(crate::EXIT_SOFTWARE)
        })
}

/// `gatehouse status`.
pub fn status(url: &AdminUrl, token: Option<&str>) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(client::fetch_status(url, token)) {
        Ok(doc) => {
            print!("{}", client::render_status(&doc, url));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_UNREACHABLE)
        }
    }
}

/// `gatehouse trace` without `-c`: the running instance's config file and live health.
pub fn trace_online(
    url: &AdminUrl,
    token: Option<&str>,
    request: &gatehouse_app::trace::Request,
) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let doc = match rt.block_on(client::fetch_status(url, token)) {
        Ok(doc) => doc,
        Err(e) => {
            eprintln!("error: {e}; or trace offline from the file: -c FILE");
            return ExitCode::from(EXIT_UNREACHABLE);
        }
    };
    match gatehouse_app::trace::online(&doc, request) {
        Ok(out) => {
            print!("{out}");
            ExitCode::from(if out.ok() { 0 } else { 1 })
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// `gatehouse observe`: one line per access record until Ctrl-C (or the process stops).
pub fn observe(url: &AdminUrl, token: Option<&str>, filter: &ObserveFilter) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let mut stdout = std::io::stdout().lock();
    let mut closed = false;
    let result = rt.block_on(client::observe(url, token, filter, |line| {
        // Flushed per line: a pipe (`| grep`) sees each record as it happens.
        if !closed && (writeln!(stdout, "{line}").is_err() || stdout.flush().is_err()) {
            closed = true;
        }
    }));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_UNREACHABLE)
        }
    }
}
