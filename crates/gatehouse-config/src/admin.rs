//! Compiling `admin`: where the admin endpoint listens and the token it asks for.
//!
//! Absent, there is no admin endpoint; present (even as `admin: {}`), it listens on
//! `127.0.0.1:9100` unless `listen` says otherwise. Anything but loopback needs a `token`:
//! the status page names every backend address and the access stream shows every client.

use std::net::SocketAddr;

use crate::compile::{Compiler, ListenerOrigin, pos};
use crate::model::{RawAdmin, S};
use crate::types::*;

/// Below this many characters a token draws a warning: it can be guessed.
const SHORT_TOKEN: usize = 16;

impl Compiler {
    /// The `admin` section; `listeners` are checked for a port it would collide with.
    pub(crate) fn admin(
        &mut self,
        raw: &S<RawAdmin>,
        listeners: &[Listener],
        origins: &[ListenerOrigin],
    ) -> Option<AdminConfig> {
        let a = &raw.value;
        let errors_before = self.error_count();
        let (listen, listen_pos) = match &a.listen {
            None => (AdminConfig::DEFAULT_LISTEN, pos(raw)),
            Some(l) => {
                let text = l.value.0.trim();
                match text.parse::<SocketAddr>() {
                    Ok(addr) => (addr, pos(l)),
                    Err(_) => {
                        let hint = if text.parse::<u16>().is_ok() {
                            format!(
                                "write the address too: `127.0.0.1:{text}` (this node only) or `ADDRESS:{text}` with a `token`"
                            )
                        } else {
                            "write an address and port, e.g. `127.0.0.1:9100` or `\"[::1]:9100\"`"
                                .to_owned()
                        };
                        self.error(pos(l), format!("`{text}` is not an address and port"))
                            .hint(hint);
                        return None;
                    }
                }
            }
        };
        let token = match &a.token {
            None => None,
            Some(t) => {
                let value = t.value.as_str();
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
                    self.error(
                        pos(t),
                        "`token` must be visible ASCII characters, with no spaces",
                    )
                    .hint("generate one with `openssl rand -hex 32`");
                } else if value.len() < SHORT_TOKEN {
                    self.warn(
                        pos(t),
                        format!(
                            "`token` is {} characters long: short enough to guess",
                            value.len()
                        ),
                    )
                    .hint("use at least 16 random characters, e.g. `openssl rand -hex 32`");
                }
                Some(value.to_owned())
            }
        };
        if token.is_none() && !listen.ip().is_loopback() {
            self.error(
                listen_pos,
                format!(
                    "the admin endpoint on {listen} would show every backend and client to anyone who can reach it"
                ),
            )
            .hint("set `token` (e.g. from `openssl rand -hex 32`), or listen on 127.0.0.1");
        }
        if listen.port() != 0 {
            let clash = listeners.iter().zip(origins).find(|(l, _)| {
                l.protocol.transport() == Transport::Tcp
                    && l.bind.port() == listen.port()
                    && l.bind.is_ipv4() == listen.is_ipv4()
                    && (l.bind.ip() == listen.ip()
                        || l.bind.ip().is_unspecified()
                        || listen.ip().is_unspecified())
            });
            if let Some((l, origin)) = clash {
                self.error(
                    listen_pos,
                    format!(
                        "the admin endpoint and listener `{}` both listen on {}",
                        origin.name, l.bind
                    ),
                )
                .hint("give the admin endpoint a port of its own")
                .note(origin.pos, format!("`{}` is defined", origin.name));
            }
        }
        (self.error_count() == errors_before).then_some(AdminConfig { listen, token })
    }
}
