//! Balancing algorithms, as pure functions over a slice of candidates.
//!
//! Each function gets the candidates' weights and open-connection counts through small
//! closures and a filter saying which candidates may be picked now (healthy, not already tried
//! for this connection); none of them locks anything. The shared state they need, a rotating
//! cursor, is an atomic the caller owns.

use std::net::{IpAddr, SocketAddr};

/// The smooth weighted round-robin order (as in nginx) for the given weights: every index
/// appears `weight` times, spread out as evenly as possible, e.g. weights `[5, 1, 1]` give
/// `a a b a c a a`. Weights are reduced by their GCD first, so the schedule stays short;
/// zero weights never appear.
pub fn schedule(weights: &[u32]) -> Vec<u32> {
    let divisor = weights
        .iter()
        .copied()
        .filter(|w| *w > 0)
        .fold(0, gcd)
        .max(1);
    let weights: Vec<i64> = weights.iter().map(|w| i64::from(*w / divisor)).collect();
    let total: i64 = weights.iter().sum();
    let mut current = vec![0i64; weights.len()];
    let mut order = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        let mut best = 0;
        for i in 0..weights.len() {
            current[i] += weights[i];
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        order.push(u32::try_from(best).unwrap_or(0));
    }
    order
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Round-robin: walks `schedule` from the shared cursor (`next` returns the cursor and
/// advances it) to the first index `usable` accepts. Skipped slots are consumed, so an
/// endpoint that is down does not hand its turns to the one after it: the others keep equal
/// shares.
pub fn round_robin(
    schedule: &[u32],
    mut next: impl FnMut() -> usize,
    usable: impl Fn(usize) -> bool,
) -> Option<usize> {
    let n = schedule.len();
    (0..n)
        .map(|_| schedule[next() % n] as usize)
        .find(|&i| usable(i))
}

/// Least connections: the usable candidate with the fewest open connections per unit of
/// weight. Ties go to the first one at or after `cursor`, so equal candidates take turns.
pub fn least_connections(
    n: usize,
    cursor: usize,
    weight: impl Fn(usize) -> u32,
    active: impl Fn(usize) -> usize,
    usable: impl Fn(usize) -> bool,
) -> Option<usize> {
    let mut best: Option<(usize, u64, u64)> = None;
    for k in 0..n {
        let i = (cursor + k) % n;
        if !usable(i) || weight(i) == 0 {
            continue;
        }
        let (a, w) = (active(i) as u64, u64::from(weight(i)));
        // a / w < best_a / best_w, without division.
        if best.is_none_or(|(_, ba, bw)| a * bw < ba * w) {
            best = Some((i, a, w));
        }
    }
    best.map(|(i, _, _)| i)
}

/// Consistent hash of the client address: weighted rendezvous hashing. Every candidate gets a
/// score from `hash(client, candidate)` scaled by its weight, and the highest usable score
/// wins. A client keeps its endpoint as long as that endpoint is usable; when one goes away,
/// only its own clients move, and they spread over the others in proportion to weight.
pub fn consistent_hash(
    client: IpAddr,
    n: usize,
    addr: impl Fn(usize) -> SocketAddr,
    weight: impl Fn(usize) -> u32,
    usable: impl Fn(usize) -> bool,
) -> Option<usize> {
    let key = hash_ip(client);
    let mut best: Option<(usize, f64)> = None;
    for i in (0..n).filter(|&i| usable(i) && weight(i) > 0) {
        let h = mix(key ^ hash_addr(addr(i)));
        // Map to (0, 1), then score = -w / ln(u): the weighted rendezvous formula.
        let unit = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let score = -f64::from(weight(i)) / unit.ln();
        if best.is_none_or(|(_, s)| score > s) {
            best = Some((i, score));
        }
    }
    best.map(|(i, _)| i)
}

fn hash_ip(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => fnv(&v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => fnv(&v4.octets()),
            None => fnv(&v6.octets()),
        },
    }
}

fn hash_addr(addr: SocketAddr) -> u64 {
    let mut h = match addr.ip() {
        IpAddr::V4(v4) => fnv(&v4.octets()),
        IpAddr::V6(v6) => fnv(&v6.octets()),
    };
    h ^= u64::from(addr.port()).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    mix(h)
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The splitmix64 finaliser: spreads every input bit over the whole output.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: usize) -> Vec<SocketAddr> {
        (0..n)
            .map(|i| SocketAddr::from(([10, 0, 0, i as u8 + 1], 80)))
            .collect()
    }

    #[test]
    fn schedule_is_smooth_and_proportional() {
        assert_eq!(schedule(&[1, 1, 1]), vec![0, 1, 2]);
        assert_eq!(schedule(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(schedule(&[2, 4]), vec![1, 0, 1], "reduced by the GCD");
        assert_eq!(schedule(&[0, 3]), vec![1], "weight 0 never appears");
        assert!(schedule(&[0, 0]).is_empty());
    }

    #[test]
    fn round_robin_skips_unusable() {
        let s = schedule(&[1, 1, 1]);
        let mut cursor = 0;
        let mut next = || {
            cursor += 1;
            cursor - 1
        };
        let picks: Vec<_> = (0..6)
            .map(|_| round_robin(&s, &mut next, |i| i != 1).unwrap())
            .collect();
        assert_eq!(
            picks,
            vec![0, 2, 0, 2, 0, 2],
            "the down endpoint's turns are shared evenly"
        );
        assert_eq!(round_robin(&s, &mut next, |_| false), None);
    }

    #[test]
    fn least_connections_prefers_fewest_per_weight() {
        let active = [3usize, 1, 1];
        let weight = [1u32, 1, 2];
        // index 2 has 1 conn on weight 2 (0.5) < index 1 (1.0) < index 0 (3.0).
        assert_eq!(
            least_connections(3, 0, |i| weight[i], |i| active[i], |_| true),
            Some(2)
        );
        assert_eq!(
            least_connections(3, 0, |i| weight[i], |i| active[i], |i| i != 2),
            Some(1)
        );
        // Ties rotate with the cursor.
        let even = [0usize; 3];
        let picks: Vec<_> = (0..3)
            .map(|c| least_connections(3, c, |_| 1, |i| even[i], |_| true).unwrap())
            .collect();
        assert_eq!(picks, vec![0, 1, 2]);
    }

    #[test]
    fn consistent_hash_is_stable_and_minimally_disruptive() {
        let a = addrs(4);
        let clients: Vec<IpAddr> = (0..2000u32)
            .map(|i| IpAddr::from((0xc0a8_0000u32 + i).to_be_bytes()))
            .collect();
        let before: Vec<usize> = clients
            .iter()
            .map(|c| consistent_hash(*c, 4, |i| a[i], |_| 1, |_| true).unwrap())
            .collect();
        // Same answer twice.
        for (c, b) in clients.iter().zip(&before) {
            assert_eq!(consistent_hash(*c, 4, |i| a[i], |_| 1, |_| true), Some(*b));
        }
        // Roughly even spread (each of 4 gets 25% +- 5%).
        for k in 0..4 {
            let share = before.iter().filter(|&&b| b == k).count();
            assert!(
                (400..=600).contains(&share),
                "endpoint {k} got {share} of 2000"
            );
        }
        // Taking endpoint 3 out moves only its own clients.
        for (c, b) in clients.iter().zip(&before) {
            let after = consistent_hash(*c, 4, |i| a[i], |_| 1, |i| i != 3).unwrap();
            if *b != 3 {
                assert_eq!(after, *b);
            }
        }
    }

    #[test]
    fn consistent_hash_honours_weights() {
        let a = addrs(2);
        let w = [3u32, 1];
        let picks: Vec<usize> = (0..4000u32)
            .map(|i| {
                let c = IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
                consistent_hash(c, 2, |i| a[i], |i| w[i], |_| true).unwrap()
            })
            .collect();
        let first = picks.iter().filter(|&&p| p == 0).count();
        assert!(
            (2800..=3200).contains(&first),
            "weight 3 of 4 got {first} of 4000"
        );
    }
}
