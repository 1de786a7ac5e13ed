//! Parsers for the scalar forms the config accepts: durations, listen addresses, endpoint
//! targets and status ranges. Each returns a message fit to show the user.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::Duration;

use crate::types::{Cidr, HostPattern, Target};

/// Parses `250ms`, `2s`, `1.5s`, `10m`, `1h` (a number and a unit; no unit is an error).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    if number.is_empty() {
        return Err(format!("`{text}` is not a duration"));
    }
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration"))?;
    let scale = match unit.trim() {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "" => return Err(format!("the duration `{text}` has no unit")),
        other => return Err(format!("`{other}` is not a duration unit")),
    };
    let secs = value * scale;
    if !secs.is_finite() || secs > 365.0 * 86400.0 {
        return Err(format!("the duration `{text}` is too long"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses an IP literal for a listener (`0.0.0.0`, `::`, `127.0.0.1`, `[::1]`).
pub fn parse_listen_address(text: &str) -> Result<IpAddr, String> {
    let t = text.trim();
    let bare = t
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(t);
    bare.parse::<IpAddr>().map_err(|_| {
        if bare.contains(':')
            && bare
                .rsplit_once(':')
                .is_some_and(|(a, _)| a.parse::<IpAddr>().is_ok())
        {
            format!("`{text}` has a port; a listener's address is an IP address only")
        } else {
            format!("`{text}` is not an IP address")
        }
    })
}

/// Parses a network for an access list or PROXY trust list: `10.0.0.0/8`, `2001:db8::/32`,
/// or a bare address (`192.168.1.13`, one host). Host bits must be zero, so that a typo such
/// as `192.168.1.1/16` does not quietly mean the whole /16.
pub fn parse_cidr(text: &str) -> Result<Cidr, String> {
    let t = text.trim();
    let (addr, prefix) = match t.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (t, None),
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("`{text}` is not an IP address or network"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= max => n,
            _ => return Err(format!("`{text}`: the prefix length must be 0 to {max}")),
        },
    };
    let cidr = Cidr { addr, prefix };
    let network = match addr {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::from(std::net::Ipv4Addr::from(u32::from(a) & mask))
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::from(std::net::Ipv6Addr::from(u128::from(a) & mask))
        }
    };
    if network != addr {
        return Err(format!(
            "`{text}` has host bits set: the network is `{network}/{prefix}`"
        ));
    }
    Ok(cidr)
}

/// Parses `ADDRESS:PORT` for a forward's `listen` (`127.0.0.1:6385`, `[::1]:6385`), or a
/// bare port, which listens on every IPv4 address.
pub fn parse_listen_socket(text: &str) -> Result<SocketAddr, String> {
    let t = text.trim();
    if let Ok(port) = t.parse::<u16>() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    t.parse::<SocketAddr>().map_err(|_| {
        format!("`{text}` is not an address and port such as `127.0.0.1:6385` or `[::1]:6385`")
    })
}

/// Parses an endpoint: `10.0.0.5:80`, `[fd00::5]:80` or `app.lan:80`.
pub fn parse_endpoint_target(text: &str) -> Result<Target, String> {
    let t = text.trim();
    if let Ok(addr) = t.parse::<SocketAddr>() {
        if addr.port() == 0 {
            return Err("`0` is not a port (1-65535)".to_owned());
        }
        return Ok(Target::Addr(addr));
    }
    let bracketed = t.starts_with('[') && t.ends_with(']');
    let Some((host, port)) = t.rsplit_once(':').filter(|_| !bracketed) else {
        return Err(format!("`{text}` has no port; write it as `host:port`"));
    };
    if host.contains(':') && !host.starts_with('[') {
        return Err(format!(
            "`{text}`: write an IPv6 endpoint in brackets, e.g. `[{host}]:{port}`"
        ));
    }
    let port: u16 = match port.parse() {
        Ok(p) if p != 0 => p,
        _ => return Err(format!("`{port}` is not a port (1-65535)")),
    };
    if host.starts_with('[') {
        return Err(format!("`{host}` is not an IPv6 address"));
    }
    if !is_hostname(host) {
        return Err(format!("`{host}` is neither an IP address nor a host name"));
    }
    if host.parse::<IpAddr>().is_ok()
        || host
            .split('.')
            .all(|l| l.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(format!("`{host}` is not a valid IP address"));
    }
    Ok(Target::Host {
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// Parses a Gateway API hostname: `app.example.com` or `*.example.com` (a wildcard only as
/// the whole first label). Lower-cased; a trailing dot is dropped. IP addresses are refused:
/// clients do not send them as a server name.
pub fn parse_host_pattern(text: &str) -> Result<HostPattern, String> {
    let t = text.trim().trim_end_matches('.').to_ascii_lowercase();
    let (wild, rest) = match t.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, t.as_str()),
    };
    if rest.contains('*') {
        return Err(format!(
            "`{text}`: a wildcard must be the whole first label, as in `*.example.com`"
        ));
    }
    if rest.parse::<IpAddr>().is_ok() {
        return Err(format!("`{text}` is an IP address, not a host name"));
    }
    if !is_hostname(rest) || rest.contains('_') {
        return Err(format!("`{text}` is not a host name"));
    }
    Ok(if wild {
        HostPattern::Wildcard(rest.to_owned())
    } else {
        HostPattern::Exact(rest.to_owned())
    })
}

fn is_hostname(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.trim_end_matches('.').split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Parses `200`, `200-399` into an inclusive range of HTTP statuses.
pub fn parse_status_range(text: &str) -> Result<RangeInclusive<u16>, String> {
    let status = |s: &str| -> Result<u16, String> {
        match s.trim().parse::<u16>() {
            Ok(v) if (100..=599).contains(&v) => Ok(v),
            _ => Err(format!("`{}` is not an HTTP status (100-599)", s.trim())),
        }
    };
    match text.split_once('-') {
        None => status(text).map(|s| s..=s),
        Some((lo, hi)) => {
            let (lo, hi) = (status(lo)?, status(hi)?);
            if lo > hi {
                return Err(format!("the range `{text}` is empty: {lo} is above {hi}"));
            }
            Ok(lo..=hi)
        }
    }
}

/// Levenshtein distance, for "did you mean" hints.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest of `candidates` to `word`, if it is close enough to be a likely typo.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases: &[(&str, Result<Duration, &str>)] = &[
            ("250ms", Ok(Duration::from_millis(250))),
            ("2s", Ok(Duration::from_secs(2))),
            ("1.5s", Ok(Duration::from_millis(1500))),
            ("10m", Ok(Duration::from_secs(600))),
            ("1h", Ok(Duration::from_secs(3600))),
            ("5", Err("the duration `5` has no unit")),
            ("5 parsecs", Err("`parsecs` is not a duration unit")),
            ("s", Err("`s` is not a duration")),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse_duration(input),
                (*want).map_err(str::to_owned),
                "{input}"
            );
        }
    }

    #[test]
    fn endpoint_targets() {
        assert_eq!(
            parse_endpoint_target("127.0.0.1:80"),
            Ok(Target::Addr("127.0.0.1:80".parse().unwrap()))
        );
        assert_eq!(
            parse_endpoint_target("[::1]:80"),
            Ok(Target::Addr("[::1]:80".parse().unwrap()))
        );
        assert_eq!(
            parse_endpoint_target("App.LAN:8443"),
            Ok(Target::Host {
                host: "app.lan".into(),
                port: 8443
            })
        );
        for bad in [
            "127.0.0.1",
            "::1:80",
            "app:0",
            "app:http",
            "999.1.1.1:80",
            "a b:80",
            "[zz]:80",
            "127.0.0.1:0",
            "[::1]:0",
            "[::1]",
        ] {
            assert!(
                parse_endpoint_target(bad).is_err(),
                "{bad} should be refused"
            );
        }
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(parse_listen_address("[::1]"), Ok("::1".parse().unwrap()));
        assert_eq!(
            parse_listen_address("127.0.0.1:80"),
            Err("`127.0.0.1:80` has a port; a listener's address is an IP address only".into())
        );
        assert_eq!(
            parse_listen_socket("6385"),
            Ok("0.0.0.0:6385".parse().unwrap())
        );
        assert!(parse_listen_socket("localhost:80").is_err());
    }

    #[test]
    fn status_ranges() {
        assert_eq!(parse_status_range("200"), Ok(200..=200));
        assert_eq!(parse_status_range("200-399"), Ok(200..=399));
        assert!(parse_status_range("399-200").is_err());
        assert!(parse_status_range("99").is_err());
    }

    #[test]
    fn typo_suggestions() {
        assert_eq!(
            closest("roundrobin", ["RoundRobin", "LeastConnections"]),
            Some("RoundRobin")
        );
        assert_eq!(closest("apx", ["app", "db"]), Some("app"));
        assert_eq!(closest("zzzzzz", ["app", "db"]), None);
    }
}
