//! Batches of UDP datagrams: one `recvmmsg` takes the queries already waiting on a socket (at
//! most [`BATCH`]), one `sendmmsg` sends their answers.
//!
//! Both go through nix's safe wrappers on the tokio socket's descriptor, inside
//! `UdpSocket::try_io`, so that tokio's readiness stays right: a receive that finds nothing
//! clears it, and the loop waits for the next datagram.
//!
//! nix's `MultiHeaders` (the `mmsghdr` arrays the calls fill) hold raw pointers: they are not
//! `Send`, so they cannot live in the serving task, which a multi-threaded runtime may move
//! between threads at an await. Each thread keeps its own in a thread-local instead, used
//! only between two awaits, and one set per address family: the kernel writes the length of
//! each received address back into its header, and the next call takes that length as the
//! room there is, so headers last used for IPv4 would cut an IPv6 address short.

use std::cell::RefCell;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::thread::LocalKey;

use nix::sys::socket::{
    ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg,
};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tracing::debug;

use crate::answer::OUR_PAYLOAD;

/// Most datagrams taken by one receive call, and answers sent by one send call.
pub(crate) const BATCH: usize = 32;

/// Room for one datagram: the largest UDP payload, as the socket could deliver (memory is
/// only touched as far as datagrams reach).
const SLOT: usize = 65_535;

/// The `mmsghdr` arrays of one thread, for one address family.
struct Headers {
    recv: MultiHeaders<SockaddrStorage>,
    send: MultiHeaders<SockaddrStorage>,
}

impl Headers {
    fn new() -> Headers {
        Headers {
            recv: MultiHeaders::preallocate(BATCH, None),
            send: MultiHeaders::preallocate(BATCH, None),
        }
    }
}

type Slot = RefCell<Option<Headers>>;

thread_local! {
    static V4: Slot = const { RefCell::new(None) };
    static V6: Slot = const { RefCell::new(None) };
}

/// Runs `f` with this thread's headers for IPv4 or IPv6 sockets.
fn with_headers<R>(ipv6: bool, f: impl FnOnce(&mut Headers) -> R) -> R {
    let key: &'static LocalKey<Slot> = if ipv6 { &V6 } else { &V4 };
    key.with_borrow_mut(|headers| f(headers.get_or_insert_with(Headers::new)))
}

/// The address of a datagram's sender.
fn socket_addr(address: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    address
        .as_sockaddr_in6()
        .map(|v6| SocketAddr::V6((*v6).into()))
}

/// The datagrams of one receive call, in buffers allocated once per socket.
pub(crate) struct Inbox {
    ipv6: bool,
    /// [`BATCH`] slots of [`SLOT`] bytes.
    slots: Vec<u8>,
    /// Per datagram received: its slot, its length, its sender.
    got: Vec<(usize, usize, SockaddrStorage)>,
}

impl Inbox {
    /// Buffers for a socket of this address family.
    pub(crate) fn new(ipv6: bool) -> Inbox {
        Inbox {
            ipv6,
            slots: vec![0; BATCH * SLOT],
            got: Vec::with_capacity(BATCH),
        }
    }

    /// Takes the datagrams waiting on `socket`, at most [`BATCH`], without waiting: their
    /// number, or `WouldBlock` when there is none (and tokio's readiness is cleared).
    pub(crate) fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        let Inbox { ipv6, slots, got } = self;
        got.clear();
        socket.try_io(Interest::READABLE, || {
            with_headers(*ipv6, |headers| {
                let mut chunks = slots.chunks_exact_mut(SLOT);
                let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] =
                    std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or_default())]);
                let received = recvmmsg(
                    socket.as_raw_fd(),
                    &mut headers.recv,
                    iovs.iter_mut(),
                    MsgFlags::MSG_DONTWAIT,
                    None,
                )?;
                for (slot, message) in received.enumerate() {
                    if let Some(address) = message.address {
                        got.push((slot, message.bytes, address));
                    }
                }
                Ok(got.len())
            })
        })
    }

    /// The datagrams received, each with its sender (in both forms, the second for sending
    /// the answer).
    pub(crate) fn datagrams(
        &self,
    ) -> impl Iterator<Item = (&[u8], SocketAddr, SockaddrStorage)> + '_ {
        self.got.iter().filter_map(|&(slot, len, address)| {
            let start = slot.checked_mul(SLOT)?;
            let packet = self.slots.get(start..start.checked_add(len)?)?;
            Some((packet, socket_addr(&address)?, address))
        })
    }
}

/// The answers of one batch, in buffers reused from one batch to the next.
pub(crate) struct Outbox {
    ipv6: bool,
    /// The answers queued (the first `to.len()`) and spare buffers.
    answers: Vec<Vec<u8>>,
    /// Where each answer queued goes.
    to: Vec<Option<SockaddrStorage>>,
    /// The same, for logs and for [`UdpSocket::send_to`].
    clients: Vec<SocketAddr>,
}

impl Outbox {
    /// Buffers for a socket of this address family.
    pub(crate) fn new(ipv6: bool) -> Outbox {
        Outbox {
            ipv6,
            answers: (0..BATCH)
                .map(|_| Vec::with_capacity(usize::from(OUR_PAYLOAD)))
                .collect(),
            to: Vec::with_capacity(BATCH),
            clients: Vec::with_capacity(BATCH),
        }
    }

    /// The buffer for the next answer; [`Outbox::queue`] sends it with the others.
    pub(crate) fn buffer(&mut self) -> &mut Vec<u8> {
        let next = self.to.len();
        if self.answers.len() <= next {
            self.answers.resize_with(next + 1, Vec::new);
        }
        &mut self.answers[next]
    }

    /// Queues the answer written in [`Outbox::buffer`] for `client` (`address`, in nix's form).
    pub(crate) fn queue(&mut self, client: SocketAddr, address: SockaddrStorage) {
        self.to.push(Some(address));
        self.clients.push(client);
    }

    /// Sends the answers queued, as many as possible per system call. An answer that does
    /// not fit in the socket's send buffer waits for room; one the kernel refuses is logged
    /// and skipped.
    pub(crate) async fn flush(&mut self, socket: &UdpSocket) {
        let mut done = 0;
        while done < self.to.len() {
            match self.send(socket, done) {
                Ok(sent) => done += sent.max(1),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    // No room in the socket's send buffer: wait for it, for this one.
                    let (Some(answer), Some(&client)) =
                        (self.answers.get(done), self.clients.get(done))
                    else {
                        break;
                    };
                    if let Err(error) = socket.send_to(answer, client).await {
                        debug!(%client, %error, "DNS UDP send failed");
                    }
                    done += 1;
                }
                Err(error) => {
                    if let Some(client) = self.clients.get(done) {
                        debug!(%client, %error, "DNS UDP send failed");
                    }
                    done += 1;
                }
            }
        }
        self.to.clear();
        self.clients.clear();
    }

    /// One `sendmmsg` of the answers queued from `from` on: how many the kernel took.
    fn send(&self, socket: &UdpSocket, from: usize) -> io::Result<usize> {
        let answers = self.answers.get(from..self.to.len()).unwrap_or_default();
        let to = self.to.get(from..).unwrap_or_default();
        socket.try_io(Interest::WRITABLE, || {
            with_headers(self.ipv6, |headers| {
                let iovs: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|i| {
                    [IoSlice::new(answers.get(i).map_or(&[], Vec::as_slice))]
                });
                let none: [ControlMessage<'_>; 0] = [];
                let sent = sendmmsg(
                    socket.as_raw_fd(),
                    &mut headers.send,
                    iovs.iter(),
                    to,
                    none,
                    MsgFlags::MSG_DONTWAIT,
                )?;
                Ok(sent.count())
            })
        })
    }
}
