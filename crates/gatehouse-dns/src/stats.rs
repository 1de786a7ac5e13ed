//! Query counters for metrics: answers sent, by question type and response code, and queries
//! dropped without an answer. Counted where an answer leaves the server, with atomics: no lock,
//! no allocation, and the packet is not parsed again beyond the question's type.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The question types counted by name; every other type is `other`.
pub const TYPES: [&str; 11] = [
    "A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT", "ANY", "other",
];

/// The response codes counted by name; every other code is `other`.
pub const RCODES: [&str; 7] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "other",
];

/// The counters of one server.
#[derive(Default)]
pub struct Stats {
    answers: [[AtomicU64; RCODES.len()]; TYPES.len()],
    dropped: AtomicU64,
}

/// One non-zero counter: question type, response code, answers sent.
pub type Count = (&'static str, &'static str, u64);

impl Stats {
    /// Counts an answer to a question of type index `kind` ([`type_index`]).
    pub(crate) fn answered(&self, kind: usize, reply: &[u8]) {
        let rcode = reply.get(3).map_or(RCODES.len() - 1, |b| {
            usize::from(b & 0x0f).min(RCODES.len() - 1)
        });
        if let Some(c) = self.answers.get(kind).and_then(|row| row.get(rcode)) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// Counts a query that got no answer (a response rather than a query, too short, too many
    /// waiting for upstreams).
    pub(crate) fn dropped(&self) {
        self.dropped.fetch_add(1, Relaxed);
    }

    /// Every non-zero answer counter.
    pub fn answers(&self) -> Vec<Count> {
        let mut out = Vec::new();
        for (t, row) in self.answers.iter().enumerate() {
            for (r, c) in row.iter().enumerate() {
                let n = c.load(Relaxed);
                if n > 0 {
                    out.push((TYPES[t], RCODES[r], n));
                }
            }
        }
        out
    }

    /// Queries dropped without an answer.
    pub fn dropped_count(&self) -> u64 {
        self.dropped.load(Relaxed)
    }
}

/// The index in [`TYPES`] of the question's type in `packet` (`other` when there is no
/// readable question).
pub(crate) fn type_index(packet: &[u8]) -> usize {
    let other = TYPES.len() - 1;
    let Some(qtype) = question_type(packet) else {
        return other;
    };
    match qtype {
        1 => 0,
        28 => 1,
        5 => 2,
        15 => 3,
        2 => 4,
        12 => 5,
        6 => 6,
        33 => 7,
        16 => 8,
        255 => 9,
        _ => other,
    }
}

/// The type of the first question: the name's labels skipped, then two bytes.
fn question_type(packet: &[u8]) -> Option<u16> {
    let qdcount = u16::from_be_bytes([*packet.get(4)?, *packet.get(5)?]);
    if qdcount == 0 {
        return None;
    }
    let mut at = 12;
    loop {
        let len = *packet.get(at)?;
        if len == 0 {
            at += 1;
            break;
        }
        if len & 0xc0 == 0xc0 {
            at += 2;
            break;
        }
        at += 1 + usize::from(len);
    }
    Some(u16::from_be_bytes([*packet.get(at)?, *packet.get(at + 1)?]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &[&str], qtype: u16) -> Vec<u8> {
        let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name {
            p.push(label.len() as u8);
            p.extend_from_slice(label.as_bytes());
        }
        p.push(0);
        p.extend_from_slice(&qtype.to_be_bytes());
        p.extend_from_slice(&1u16.to_be_bytes());
        p
    }

    #[test]
    fn types_and_codes_are_read_from_the_packets() {
        let cases: &[(Vec<u8>, &str)] = &[
            (query(&["www", "home", "arpa"], 1), "A"),
            (query(&["x"], 28), "AAAA"),
            (query(&[], 6), "SOA"),
            (query(&["x"], 255), "ANY"),
            (query(&["x"], 99), "other"),
            (vec![0; 5], "other"),
            (query(&["x"], 1)[..14].to_vec(), "other"),
        ];
        for (packet, want) in cases {
            assert_eq!(TYPES[type_index(packet)], *want, "{packet:?}");
        }
        let stats = Stats::default();
        let a = type_index(&query(&["x"], 1));
        stats.answered(a, &[0x12, 0x34, 0x81, 0x83]);
        stats.answered(a, &[0x12, 0x34, 0x81, 0x83]);
        stats.answered(a, &[0x12, 0x34, 0x81, 0x8b]);
        stats.answered(a, &[0x12]);
        stats.dropped();
        assert_eq!(
            stats.answers(),
            vec![("A", "NXDOMAIN", 2), ("A", "other", 2)]
        );
        assert_eq!(stats.dropped_count(), 1);
    }
}
