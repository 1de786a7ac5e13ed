//! One query packet in, one answer packet out: the protocol hygiene, the local answers, and
//! the encoding of every answer (local, forwarded or error) within the client's size.
//!
//! In order, for each packet:
//! - shorter than a header: dropped; a response (QR=1), parsed or not: dropped (answering
//!   answers is how reflection loops start);
//! - an opcode other than QUERY: NOTIMP (RFC 1035 section 4.1.1);
//! - a message that does not parse, or has other than one question: FORMERR;
//! - EDNS version above 0: BADVERS (extended RCODE 16) with our OPT (RFC 6891 section 6.1.3);
//! - a class other than IN: REFUSED; a zone transfer (AXFR, IXFR): REFUSED; OPT asked as a
//!   type: FORMERR;
//! - then the zones answer, or the name is forwarded (REFUSED, with RA clear, for clients
//!   outside `recursion_allow` and when there is nobody to forward to).
//!
//! Every answer copies the id, opcode, RD and CD bits and the question (its case kept, for
//! clients that randomize it); it has an OPT record iff the query had one, advertising 1232
//! bytes, version 0, the query's DO bit (RFC 3225 section 3), no options (unknown ones are
//! ignored) and no other flags. Over UDP an answer is at most the client's EDNS size, capped
//! at 1232, or 512 bytes without EDNS; a bigger one is sent with TC set and empty answer,
//! authority and additional sections (never a partial RRset: RFC 2181 section 9), and the
//! client asks again over TCP.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use gatehouse_config::Transport;
use hickory_proto::op::{
    Edns, Header, Message, MessageType, Metadata, OpCode, Query, ResponseCode,
};
use hickory_proto::rr::{DNSClass, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use tracing::debug;

use crate::State;
use crate::forward::{Cache, Key, Upstream};
use crate::zones::Resolution;

/// The UDP payload size we advertise, and the most we send over UDP whatever the client
/// advertises (DNS flag day 2020: no IP fragmentation).
pub(crate) const OUR_PAYLOAD: u16 = 1232;

/// Without EDNS, a UDP message is at most 512 bytes (RFC 1035 section 4.2.1).
pub(crate) const PLAIN_UDP_MAX: usize = 512;

/// A TCP message is at most what its two-byte length prefix can say.
pub(crate) const TCP_MAX: usize = 65_535;

/// What to do with one packet.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Send nothing.
    Drop,
    /// Send this answer.
    Reply(Vec<u8>),
    /// Ask an upstream, then answer with [`Asked::forwarded`] or [`Asked::upstream_failed`].
    Forward(Box<Pending>),
}

/// A query that goes to an upstream resolver.
#[derive(Debug)]
pub(crate) struct Pending {
    /// What the answer needs to know about the query.
    pub asked: Asked,
    /// The question as asked upstream and cached.
    pub key: Key,
    /// The resolvers to ask, in turn.
    pub upstreams: Vec<SocketAddr>,
}

/// What an answer needs to know about its query.
#[derive(Debug, Clone)]
pub(crate) struct Asked {
    /// The query's header.
    meta: Metadata,
    /// The question, echoed in the answer (none when it could not be read).
    question: Option<Query>,
    /// `Some(DO bit)` when the query had an OPT record.
    edns: Option<bool>,
    /// The largest answer the client takes.
    limit: usize,
}

/// Turns one packet from `client` into an [`Outcome`].
pub(crate) fn respond(
    state: &State,
    cache: &Cache,
    health: &dyn Fn(&str) -> bool,
    packet: &[u8],
    client: IpAddr,
    transport: Transport,
    now: Instant,
) -> Outcome {
    let Ok(header) = Header::read(&mut BinDecoder::new(packet)) else {
        return Outcome::Drop;
    };
    if header.metadata.message_type == MessageType::Response {
        return Outcome::Drop;
    }
    let udp = transport == Transport::Udp;
    let mut asked = Asked {
        meta: header.metadata,
        question: None,
        edns: None,
        limit: if udp { PLAIN_UDP_MAX } else { TCP_MAX },
    };
    let parsed = Message::from_vec(packet);
    if let Ok(message) = &parsed {
        if let [question] = message.queries.as_slice() {
            asked.question = Some(question.clone());
        }
        if let Some(edns) = &message.edns {
            asked.edns = Some(edns.flags().dnssec_ok);
            if udp {
                let size = usize::from(edns.max_payload());
                asked.limit = size.clamp(PLAIN_UDP_MAX, usize::from(OUR_PAYLOAD));
            }
        }
    }

    if header.metadata.op_code != OpCode::Query {
        return Outcome::Reply(asked.error(ResponseCode::NotImp));
    }
    let Ok(message) = parsed else {
        return Outcome::Reply(asked.error(ResponseCode::FormErr));
    };
    let Some(question) = asked.question.clone() else {
        // No question, or several: RFC 9619 says one, exactly.
        return Outcome::Reply(asked.error(ResponseCode::FormErr));
    };
    if message.edns.as_ref().is_some_and(|e| e.version() > 0) {
        return Outcome::Reply(asked.error(ResponseCode::BADVERS));
    }
    if question.query_class() != DNSClass::IN {
        return Outcome::Reply(asked.error(ResponseCode::Refused));
    }
    match question.query_type() {
        RecordType::OPT => return Outcome::Reply(asked.error(ResponseCode::FormErr)),
        RecordType::AXFR | RecordType::IXFR => {
            return Outcome::Reply(asked.error(ResponseCode::Refused));
        }
        _ => {}
    }

    let may_recurse = state
        .config
        .recursion_allow
        .iter()
        .any(|net| net.contains(client));
    match state
        .zones
        .resolve(question.name(), question.query_type(), health)
    {
        Resolution::Local(answer) => {
            let mut message = asked.message(answer.rcode);
            message.metadata.authoritative = true;
            message.metadata.recursion_available = may_recurse && state.zones.has_upstreams();
            message.answers = answer.answers;
            message.authorities = answer.authority;
            Outcome::Reply(asked.encode(message))
        }
        Resolution::Upstream(upstreams) => {
            if upstreams.is_empty() || !may_recurse {
                return Outcome::Reply(asked.error(ResponseCode::Refused));
            }
            let key = Key {
                name: question.name().to_lowercase(),
                qtype: question.query_type(),
                dnssec_ok: asked.edns == Some(true),
                checking_disabled: asked.meta.checking_disabled,
            };
            match cache.get(&key, now) {
                Some(cached) => Outcome::Reply(asked.forwarded(&cached)),
                None => Outcome::Forward(Box::new(Pending {
                    asked,
                    key,
                    upstreams,
                })),
            }
        }
    }
}

impl Asked {
    /// An answer with `rcode`, the query's id, opcode, RD, CD, question and OPT, no records.
    fn message(&self, rcode: ResponseCode) -> Message {
        let mut message = Message::new(self.meta.id, MessageType::Response, self.meta.op_code);
        message.metadata.recursion_desired = self.meta.recursion_desired;
        message.metadata.checking_disabled = self.meta.checking_disabled;
        message.metadata.response_code = rcode;
        if let Some(question) = &self.question {
            message.add_query(question.clone());
        }
        if let Some(dnssec_ok) = self.edns {
            let mut edns = Edns::new();
            edns.set_max_payload(OUR_PAYLOAD);
            edns.set_version(0);
            edns.set_dnssec_ok(dnssec_ok);
            message.set_edns(edns);
        }
        message
    }

    /// An answer with no records.
    fn error(&self, rcode: ResponseCode) -> Vec<u8> {
        self.encode(self.message(rcode))
    }

    /// The answer from an upstream (or the cache): RA set, AD only for clients that asked for
    /// it (DO or AD in the query: RFC 6840 section 5.8).
    pub(crate) fn forwarded(&self, upstream: &Upstream) -> Vec<u8> {
        let mut message = self.message(upstream.rcode);
        message.metadata.recursion_available = true;
        message.metadata.authentic_data =
            upstream.authentic_data && (self.edns == Some(true) || self.meta.authentic_data);
        message.answers = upstream.answers.clone();
        message.authorities = upstream.authorities.clone();
        message.additionals = upstream.additionals.clone();
        self.encode(message)
    }

    /// SERVFAIL, RA set: no upstream answered.
    pub(crate) fn upstream_failed(&self) -> Vec<u8> {
        let mut message = self.message(ResponseCode::ServFail);
        message.metadata.recursion_available = true;
        self.encode(message)
    }

    /// The bytes of `message`, truncated (TC, no records) if they exceed the client's limit;
    /// SERVFAIL if the records do not encode.
    fn encode(&self, mut message: Message) -> Vec<u8> {
        match message.to_vec() {
            Ok(bytes) if bytes.len() <= self.limit => return bytes,
            Ok(_) => message.metadata.truncation = true,
            Err(error) => {
                debug!(%error, "DNS answer does not encode");
                message.metadata.response_code = ResponseCode::ServFail;
                message.metadata.authoritative = false;
            }
        }
        message.answers.clear();
        message.authorities.clear();
        message.additionals.clear();
        match message.to_vec() {
            Ok(bytes) if bytes.len() <= self.limit => bytes,
            _ => header_only(&message.metadata),
        }
    }
}

/// A bare header (no question, no OPT): what is left when nothing else encodes.
fn header_only(meta: &Metadata) -> Vec<u8> {
    let [id_hi, id_lo] = meta.id.to_be_bytes();
    let flags_hi = 0x80
        | ((u8::from(meta.op_code) & 0x0f) << 3)
        | (u8::from(meta.authoritative) << 2)
        | (u8::from(meta.truncation) << 1)
        | u8::from(meta.recursion_desired);
    let flags_lo = (u8::from(meta.recursion_available) << 7) | (meta.response_code.low() & 0x0f);
    vec![id_hi, id_lo, flags_hi, flags_lo, 0, 0, 0, 0, 0, 0, 0, 0]
}
