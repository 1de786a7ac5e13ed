//! The VRRPv3 advertisement on the wire (RFC 5798 section 5.2).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |(rsvd) |     Max Adver Int     |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                  IPvX Address(es) (4 or 16 bytes each)        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Version 3, type 1 (advertisement); the maximum advertisement interval is 12 bits of
//! centiseconds (10 ms to 40.95 s).
//!
//! ## The checksum
//!
//! The Internet checksum (RFC 1071) over a pseudo-header followed by the message, with the
//! checksum field zero while it is computed (RFC 5798 section 5.2.8). The pseudo-header is
//! RFC 8200's for IPv6 (source, destination, 32-bit length, next header 112) and the classic
//! 12 bytes for IPv4 (source, destination, zero, protocol 112, 16-bit length).
//!
//! For IPv4 implementations disagree, because RFC 5798 only points at the IPv6 pseudo-header.
//! keepalived includes the IPv4 pseudo-header (its default; 2.2.7, Debian's, has no option to
//! leave it out, later versions have `v3_checksum_as_v2`): checked against its adverts in
//! `tests/vrrp.rs`. FRR includes it too unless told not to; Cisco and RFC 9568 (which
//! obsoletes RFC 5798) use the message alone. [`VrrpChecksum`] chooses; IPv6 always uses the
//! pseudo-header.
//!
//! Decoding is strict: an IPv4 packet is accepted only if its checksum is right in the
//! configured mode. When it would be right in the other mode, the error says so
//! ([`PacketError::Checksum`]'s `other_mode_matches`), which is what an operator needs to fix
//! a peer mismatch: a packet whose checksum happens to match either computation is not a
//! reason to guess.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use gatehouse_config::VrrpChecksum;

use crate::net::Family;

/// The IP protocol number of VRRP.
pub const PROTOCOL: u8 = 112;
/// The VRRP version this crate speaks.
pub const VERSION: u8 = 3;
/// The only VRRPv3 message type: an advertisement.
pub const TYPE_ADVERTISEMENT: u8 = 1;
/// The IPv4 multicast group adverts are sent to (RFC 5798 section 5.1.1.2).
pub const MULTICAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The IPv6 multicast group adverts are sent to (RFC 5798 section 5.1.2.2).
pub const MULTICAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// The TTL / hop limit every advert is sent with and must arrive with.
pub const TTL: u8 = 255;
/// The fixed part of the message, before the addresses.
pub const HEADER_LEN: usize = 8;
/// The largest maximum advertisement interval the 12-bit field holds, in centiseconds.
pub const MAX_INTERVAL_CENTIS: u16 = 0x0fff;

/// One advertisement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    /// Virtual router id.
    pub vrid: u8,
    /// The sender's priority: 0 (it is giving the addresses up), 1 to 254, 255 (owner).
    pub priority: u8,
    /// The sender's advertisement interval, in centiseconds (12 bits; see [`centiseconds`]).
    pub max_advert_interval: u16,
    /// The virtual addresses, all of the packet's family.
    pub addresses: Vec<IpAddr>,
}

impl Advert {
    /// The advertisement interval as a duration.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(u64::from(self.max_advert_interval) * 10)
    }
}

/// An interval as the 12-bit centisecond field: rounded to the nearest centisecond and kept
/// within 1 to 4095 (10 ms to 40.95 s; the configuration allows nothing else).
pub fn centiseconds(interval: Duration) -> u16 {
    let centis = (interval.as_millis() + 5) / 10;
    u16::try_from(centis)
        .unwrap_or(MAX_INTERVAL_CENTIS)
        .clamp(1, MAX_INTERVAL_CENTIS)
}

/// The multicast group adverts of a family are sent to.
pub fn multicast_group(family: Family) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(MULTICAST_V4),
        Family::V6 => IpAddr::V6(MULTICAST_V6),
    }
}

/// What is wrong with a packet (decoding) or an advert (encoding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketError {
    /// Shorter than the 8-byte header.
    TooShort {
        /// Its length.
        len: usize,
    },
    /// Not version 3.
    Version(u8),
    /// Not an advertisement.
    Type(u8),
    /// The part after the header is not a whole number of addresses of the family.
    Length {
        /// The message's length.
        len: usize,
        /// The size of one address of the family (4 or 16).
        address_len: usize,
    },
    /// The count field disagrees with the addresses the message holds.
    Count {
        /// The count field.
        count: u8,
        /// The addresses present.
        present: usize,
    },
    /// The maximum advertisement interval is zero.
    ZeroInterval,
    /// The checksum is wrong.
    Checksum {
        /// The packet's checksum field.
        found: u16,
        /// What it should be in the configured mode.
        expected: u16,
        /// IPv4 only: the checksum is right in the other mode (with the pseudo-header when
        /// the configured mode leaves it out, or the other way round): the peer computes it
        /// differently.
        other_mode_matches: bool,
    },
    /// Encoding: an address, the source or the destination is not of the packet's family.
    Family,
    /// Encoding: more than 255 addresses.
    TooManyAddresses(usize),
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { len } => {
                write!(
                    f,
                    "{len} bytes, shorter than the {HEADER_LEN}-byte VRRP header"
                )
            }
            Self::Version(v) => write!(f, "VRRP version {v}, expected {VERSION}"),
            Self::Type(t) => write!(
                f,
                "message type {t}, expected {TYPE_ADVERTISEMENT} (advertisement)"
            ),
            Self::Length { len, address_len } => write!(
                f,
                "length {len} is not the {HEADER_LEN}-byte header plus whole {address_len}-byte addresses"
            ),
            Self::Count { count, present } => {
                write!(
                    f,
                    "address count field says {count}, the message holds {present}"
                )
            }
            Self::ZeroInterval => f.write_str("maximum advertisement interval 0"),
            Self::Checksum {
                found,
                expected,
                other_mode_matches,
            } => {
                write!(f, "bad checksum {found:#06x}, expected {expected:#06x}")?;
                if *other_mode_matches {
                    f.write_str(
                        " (it is right in the other IPv4 mode: the peer computes the checksum \
                         the other way, with or without the pseudo-header)",
                    )?;
                }
                Ok(())
            }
            Self::Family => f.write_str("an address of the other family"),
            Self::TooManyAddresses(n) => write!(f, "{n} addresses, at most 255 fit"),
        }
    }
}

impl std::error::Error for PacketError {}

fn address_len(family: Family) -> usize {
    match family {
        Family::V4 => 4,
        Family::V6 => 16,
    }
}

fn is_family(addr: IpAddr, family: Family) -> bool {
    matches!(
        (addr, family),
        (IpAddr::V4(_), Family::V4) | (IpAddr::V6(_), Family::V6)
    )
}

/// Encodes an advert sent from `source` to `destination` (the multicast group or a unicast
/// peer: both are in the pseudo-header).
///
/// Fails only on an advert no valid configuration produces: addresses of the other family
/// (or a source/destination of it), more than 255 addresses.
pub fn encode(
    advert: &Advert,
    family: Family,
    checksum: VrrpChecksum,
    source: IpAddr,
    destination: IpAddr,
) -> Result<Vec<u8>, PacketError> {
    if !is_family(source, family)
        || !is_family(destination, family)
        || advert.addresses.iter().any(|a| !is_family(*a, family))
    {
        return Err(PacketError::Family);
    }
    let count = u8::try_from(advert.addresses.len())
        .map_err(|_| PacketError::TooManyAddresses(advert.addresses.len()))?;
    let mut out = Vec::with_capacity(HEADER_LEN + advert.addresses.len() * address_len(family));
    out.push((VERSION << 4) | TYPE_ADVERTISEMENT);
    out.push(advert.vrid);
    out.push(advert.priority);
    out.push(count);
    // The 4 reserved bits are zero.
    out.extend_from_slice(&(advert.max_advert_interval & MAX_INTERVAL_CENTIS).to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    for addr in &advert.addresses {
        match addr {
            IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
        }
    }
    let sum = compute(
        &out,
        pseudo_header_used(family, checksum),
        source,
        destination,
    );
    out[6..8].copy_from_slice(&sum.to_be_bytes());
    Ok(out)
}

/// Decodes the VRRP message `bytes` (without the IP header) received from `source` at
/// `destination`, checking version, type, length, count, interval and checksum.
///
/// The address list is returned as is: comparing it with the configuration is the caller's
/// business (RFC 5798 section 7.1).
pub fn decode(
    bytes: &[u8],
    family: Family,
    checksum: VrrpChecksum,
    source: IpAddr,
    destination: IpAddr,
) -> Result<Advert, PacketError> {
    if bytes.len() < HEADER_LEN {
        return Err(PacketError::TooShort { len: bytes.len() });
    }
    let version = bytes[0] >> 4;
    if version != VERSION {
        return Err(PacketError::Version(version));
    }
    let kind = bytes[0] & 0x0f;
    if kind != TYPE_ADVERTISEMENT {
        return Err(PacketError::Type(kind));
    }
    let address_len = address_len(family);
    let body = &bytes[HEADER_LEN..];
    if !body.len().is_multiple_of(address_len) {
        return Err(PacketError::Length {
            len: bytes.len(),
            address_len,
        });
    }
    let count = bytes[3];
    let present = body.len() / address_len;
    if usize::from(count) != present {
        return Err(PacketError::Count { count, present });
    }
    let interval = u16::from_be_bytes([bytes[4], bytes[5]]) & MAX_INTERVAL_CENTIS;
    if interval == 0 {
        return Err(PacketError::ZeroInterval);
    }
    if !is_family(source, family) || !is_family(destination, family) {
        return Err(PacketError::Family);
    }
    let found = u16::from_be_bytes([bytes[6], bytes[7]]);
    let with_pseudo = pseudo_header_used(family, checksum);
    let expected = checksum_of(bytes, with_pseudo, source, destination);
    if found != expected {
        let other_mode_matches =
            family == Family::V4 && checksum_of(bytes, !with_pseudo, source, destination) == found;
        return Err(PacketError::Checksum {
            found,
            expected,
            other_mode_matches,
        });
    }
    let addresses = body
        .chunks_exact(address_len)
        .map(|chunk| match <[u8; 4]>::try_from(chunk) {
            Ok(v4) => IpAddr::from(v4),
            Err(_) => {
                let mut v6 = [0u8; 16];
                v6.copy_from_slice(chunk);
                IpAddr::from(v6)
            }
        })
        .collect();
    Ok(Advert {
        vrid: bytes[1],
        priority: bytes[2],
        max_advert_interval: interval,
        addresses,
    })
}

fn pseudo_header_used(family: Family, checksum: VrrpChecksum) -> bool {
    family == Family::V6 || checksum == VrrpChecksum::Rfc5798
}

/// The checksum `message` should carry (its own checksum field is treated as zero).
fn checksum_of(message: &[u8], with_pseudo: bool, source: IpAddr, destination: IpAddr) -> u16 {
    let mut copy = message.to_vec();
    if copy.len() >= HEADER_LEN {
        copy[6] = 0;
        copy[7] = 0;
    }
    compute(&copy, with_pseudo, source, destination)
}

/// The Internet checksum of `message` (checksum field already zero), after the pseudo-header
/// when `with_pseudo`.
fn compute(message: &[u8], with_pseudo: bool, source: IpAddr, destination: IpAddr) -> u16 {
    let mut sum = Sum::default();
    if with_pseudo {
        // Messages are at most 8 + 255 * 16 bytes, so the length always fits.
        let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
        match (source, destination) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                sum.add(&s.octets());
                sum.add(&d.octets());
                sum.add(&[0, PROTOCOL]);
                sum.add(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                sum.add(&s.octets());
                sum.add(&d.octets());
                sum.add(&len.to_be_bytes());
                sum.add(&[0, 0, 0, PROTOCOL]);
            }
            // encode and decode check the families before getting here.
            _ => {}
        }
    }
    sum.add(message);
    sum.finish()
}

/// RFC 1071's one's complement sum, fed with pieces of even length except possibly the last.
#[derive(Default)]
struct Sum(u32);

impl Sum {
    fn add(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(2);
        for pair in &mut chunks {
            self.0 += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
        }
        if let [last] = chunks.remainder() {
            self.0 += u32::from(u16::from_be_bytes([*last, 0]));
        }
        self.fold();
    }

    fn fold(&mut self) {
        while self.0 > 0xffff {
            self.0 = (self.0 & 0xffff) + (self.0 >> 16);
        }
    }

    fn finish(mut self) -> u16 {
        self.fold();
        !(self.0 as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: VrrpChecksum = VrrpChecksum::Rfc5798;
    const N: VrrpChecksum = VrrpChecksum::NoPseudoHeader;

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn advert4() -> Advert {
        Advert {
            vrid: 51,
            priority: 150,
            max_advert_interval: 100,
            addresses: vec![v4("192.0.2.100"), v4("192.0.2.101")],
        }
    }

    /// Verifies an encoded message the RFC 1071 way: the sum over everything, checksum
    /// included, is all ones.
    fn sums_to_ones(message: &[u8], with_pseudo: bool, src: IpAddr, dst: IpAddr) -> bool {
        let mut sum = Sum::default();
        if with_pseudo {
            match (src, dst) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    sum.add(&s.octets());
                    sum.add(&d.octets());
                    sum.add(&[0, PROTOCOL]);
                    sum.add(&(message.len() as u16).to_be_bytes());
                }
                (IpAddr::V6(s), IpAddr::V6(d)) => {
                    sum.add(&s.octets());
                    sum.add(&d.octets());
                    sum.add(&(message.len() as u32).to_be_bytes());
                    sum.add(&[0, 0, 0, PROTOCOL]);
                }
                _ => unreachable!(),
            }
        }
        sum.add(message);
        sum.0 == 0xffff
    }

    #[test]
    fn layout_follows_rfc_5798_section_5_2() {
        let group = multicast_group(Family::V4);
        let bytes = encode(&advert4(), Family::V4, R, v4("192.0.2.1"), group).unwrap();
        assert_eq!(bytes.len(), 8 + 2 * 4);
        assert_eq!(bytes[0], 0x31, "version 3, type 1");
        assert_eq!(bytes[1], 51, "VRID");
        assert_eq!(bytes[2], 150, "priority");
        assert_eq!(bytes[3], 2, "count");
        assert_eq!(&bytes[4..6], &[0x00, 0x64], "reserved 0, 100 centiseconds");
        assert_eq!(&bytes[8..12], &[192, 0, 2, 100]);
        assert_eq!(&bytes[12..16], &[192, 0, 2, 101]);
    }

    /// A known packet, checked by hand: RFC 1071 arithmetic on
    /// `31 33 96 01 00 64 cc cc c0 00 02 64` from 192.0.2.1 to 224.0.0.18.
    #[test]
    fn known_checksums() {
        let advert = Advert {
            vrid: 0x33,
            priority: 0x96,
            max_advert_interval: 100,
            addresses: vec![v4("192.0.2.100")],
        };
        let src = v4("192.0.2.1");
        let group = multicast_group(Family::V4);
        // Message alone: 0x3133 + 0x9601 + 0x0064 + 0xc000 + 0x0264 = 0x1_89fc -> 0x89fd,
        // complement 0x7602.
        let bare = encode(&advert, Family::V4, N, src, group).unwrap();
        assert_eq!(&bare[6..8], &[0x76, 0x02]);
        // Pseudo-header: c000 + 0201 + e000 + 0012 + 0070 + 000c = 0x1_a28f -> 0xa290; with
        // the message 0xa290 + 0x89fd = 0x1_2c8d -> 0x2c8e, complement 0xd371.
        let pseudo = encode(&advert, Family::V4, R, src, group).unwrap();
        assert_eq!(&pseudo[6..8], &[0xd3, 0x71]);
    }

    #[test]
    fn checksums_verify_the_rfc_1071_way() {
        let cases: Vec<(Family, VrrpChecksum, IpAddr, IpAddr, Vec<IpAddr>)> = vec![
            (
                Family::V4,
                R,
                v4("192.0.2.1"),
                v4("224.0.0.18"),
                vec![v4("192.0.2.100")],
            ),
            (
                Family::V4,
                N,
                v4("192.0.2.1"),
                v4("224.0.0.18"),
                vec![v4("192.0.2.100")],
            ),
            (Family::V4, R, v4("192.0.2.1"), v4("192.0.2.2"), vec![]),
            (
                Family::V6,
                R,
                v4("fe80::1"),
                v4("ff02::12"),
                vec![v4("2001:db8::100"), v4("2001:db8::101")],
            ),
            // The mode does not matter for IPv6: always the pseudo-header.
            (
                Family::V6,
                N,
                v4("fe80::1"),
                v4("ff02::12"),
                vec![v4("2001:db8::100")],
            ),
        ];
        for (family, mode, src, dst, addresses) in cases {
            let advert = Advert {
                vrid: 7,
                priority: 100,
                max_advert_interval: 5,
                addresses,
            };
            let bytes = encode(&advert, family, mode, src, dst).unwrap();
            let pseudo = family == Family::V6 || mode == R;
            assert!(
                sums_to_ones(&bytes, pseudo, src, dst),
                "{family:?} {mode:?} {src}"
            );
            assert_eq!(decode(&bytes, family, mode, src, dst).unwrap(), advert);
        }
    }

    #[test]
    fn round_trips() {
        let cases = vec![
            (Family::V4, advert4(), v4("192.0.2.1"), v4("224.0.0.18")),
            (
                Family::V4,
                Advert {
                    vrid: 255,
                    priority: 0,
                    max_advert_interval: 4095,
                    addresses: vec![],
                },
                v4("10.0.0.1"),
                v4("10.0.0.2"),
            ),
            (
                Family::V4,
                Advert {
                    vrid: 1,
                    priority: 255,
                    max_advert_interval: 1,
                    addresses: (0..255).map(|i| v4(&format!("10.1.0.{i}"))).collect(),
                },
                v4("10.0.0.1"),
                v4("224.0.0.18"),
            ),
            (
                Family::V6,
                Advert {
                    vrid: 9,
                    priority: 254,
                    max_advert_interval: 300,
                    addresses: vec![v4("2001:db8::1"), v4("fe80::1")],
                },
                v4("fe80::2"),
                v4("ff02::12"),
            ),
        ];
        for (family, advert, src, dst) in cases {
            for mode in [R, N] {
                let bytes = encode(&advert, family, mode, src, dst).unwrap();
                assert_eq!(decode(&bytes, family, mode, src, dst).unwrap(), advert);
            }
        }
    }

    #[test]
    fn decode_errors() {
        let src = v4("192.0.2.1");
        let dst = v4("224.0.0.18");
        let good = encode(&advert4(), Family::V4, R, src, dst).unwrap();
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            f(&mut b);
            b
        };
        // A change to the header is fixed up in the checksum so the intended error shows.
        let refix = |mut b: Vec<u8>| {
            let sum = checksum_of(&b, true, src, dst);
            b[6..8].copy_from_slice(&sum.to_be_bytes());
            b
        };
        let cases: Vec<(&str, Vec<u8>, PacketError)> = vec![
            ("empty", vec![], PacketError::TooShort { len: 0 }),
            (
                "7 bytes",
                good[..7].to_vec(),
                PacketError::TooShort { len: 7 },
            ),
            ("version 2", with(&|b| b[0] = 0x21), PacketError::Version(2)),
            ("type 2", with(&|b| b[0] = 0x32), PacketError::Type(2)),
            (
                "half an address",
                good[..14].to_vec(),
                PacketError::Length {
                    len: 14,
                    address_len: 4,
                },
            ),
            (
                "count 3, two addresses",
                refix(with(&|b| b[3] = 3)),
                PacketError::Count {
                    count: 3,
                    present: 2,
                },
            ),
            (
                "one address short",
                good[..12].to_vec(),
                PacketError::Count {
                    count: 2,
                    present: 1,
                },
            ),
            (
                "interval 0",
                refix(with(&|b| b[4..6].copy_from_slice(&[0xf0, 0]))),
                PacketError::ZeroInterval,
            ),
        ];
        for (name, bytes, want) in cases {
            assert_eq!(decode(&bytes, Family::V4, R, src, dst), Err(want), "{name}");
        }

        // A flipped address bit: bad checksum, in no mode.
        let corrupt = with(&|b| b[9] ^= 1);
        assert!(matches!(
            decode(&corrupt, Family::V4, R, src, dst),
            Err(PacketError::Checksum {
                other_mode_matches: false,
                ..
            })
        ));
        // The wrong destination in the pseudo-header (unicast vs multicast).
        assert!(matches!(
            decode(&good, Family::V4, R, src, v4("192.0.2.2")),
            Err(PacketError::Checksum { .. })
        ));
        // Reserved bits are ignored on receipt.
        let reserved = refix(with(&|b| b[4] |= 0xf0));
        assert_eq!(
            decode(&reserved, Family::V4, R, src, dst).unwrap(),
            advert4()
        );
        // Family mismatches.
        assert_eq!(
            decode(&good, Family::V4, R, v4("fe80::1"), dst),
            Err(PacketError::Family)
        );
        let v6 = Advert {
            addresses: vec![v4("2001:db8::1")],
            ..advert4()
        };
        assert_eq!(
            encode(&v6, Family::V4, R, src, dst),
            Err(PacketError::Family)
        );
        let many = Advert {
            addresses: (0..256)
                .map(|i| IpAddr::V4(Ipv4Addr::from(i as u32)))
                .collect(),
            ..advert4()
        };
        assert_eq!(
            encode(&many, Family::V4, R, src, dst),
            Err(PacketError::TooManyAddresses(256))
        );
        // IPv6 lengths are in 16-byte addresses.
        let six = encode(&v6, Family::V6, R, v4("fe80::1"), v4("ff02::12")).unwrap();
        assert_eq!(
            decode(&six[..20], Family::V6, R, v4("fe80::1"), v4("ff02::12")),
            Err(PacketError::Length {
                len: 20,
                address_len: 16
            })
        );
    }

    /// Strict by default: a packet checksummed in the other IPv4 mode is refused, and the
    /// error says the other mode would have matched.
    #[test]
    fn ipv4_modes_do_not_mix() {
        let src = v4("192.0.2.1");
        let dst = v4("224.0.0.18");
        for (sent, configured) in [(R, N), (N, R)] {
            let bytes = encode(&advert4(), Family::V4, sent, src, dst).unwrap();
            match decode(&bytes, Family::V4, configured, src, dst) {
                Err(
                    e @ PacketError::Checksum {
                        other_mode_matches: true,
                        ..
                    },
                ) => {
                    assert!(e.to_string().contains("other IPv4 mode"), "{e}");
                }
                other => panic!("sent {sent:?}, configured {configured:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn interval_conversions() {
        let cases = [
            (Duration::from_millis(10), 1),
            (Duration::from_millis(1000), 100),
            (Duration::from_millis(1234), 123),
            (Duration::from_millis(1235), 124),
            (Duration::from_millis(40950), 4095),
            (Duration::from_secs(3600), 4095),
            (Duration::ZERO, 1),
        ];
        for (d, c) in cases {
            assert_eq!(centiseconds(d), c, "{d:?}");
        }
        let advert = Advert {
            max_advert_interval: 123,
            ..advert4()
        };
        assert_eq!(advert.interval(), Duration::from_millis(1230));
    }
}
