//! A connection's slab entry, from accept to close, and the reasons connections end.
//!
//! Every accepted connection gets a [`Conn`] in its worker's slab; the slab index is its
//! key for the topic hub, the timer wheel and the data plane's tokens. Until its request
//! head is parsed a connection is served by a monoio task ([`handshake`]); a subscriber
//! then becomes plain state in this entry, with no task, no future and no read buffer.
//! The lifecycle is written down in `src/conn/LIFECYCLE.md`.

pub mod forward;
pub mod handshake;
pub mod lifecycle;
pub mod publish;
pub mod route;
pub mod subscribe;
pub mod topics;

use std::os::fd::RawFd;

use bytes::Bytes;
use smallvec::SmallVec;

use crate::broadcast::frame::Body;
use crate::broadcast::hub::Link;
use crate::stream::out::Out;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// A task is reading a request head or serving a non-streaming request.
    Request,
    /// A subscriber: frames flow out, nothing is read but a peer's close.
    Stream,
    /// A subscriber being closed gracefully: queued frames (a final `retry:`) are written,
    /// then FIN.
    Draining,
    /// Closed; waiting for the kernel to finish operations that reference the entry.
    Closing,
}

/// Bits of [`Conn::flags`].
pub mod flags {
    /// A write is in the kernel.
    pub const WRITING: u16 = 1 << 0;
    /// The peer-close watch is armed in the kernel (io_uring plane).
    pub const WATCHING: u16 = 1 << 1;
    /// On the worker's list of connections to write at the next flush.
    pub const DIRTY: u16 = 1 << 2;
    /// The last write hit a full socket (epoll plane): wait for writability.
    pub const BLOCKED: u16 = 1 << 3;
    /// The request timer fired: the task's read was interrupted on purpose.
    pub const TIMED_OUT: u16 = 1 << 4;
    /// Over its queue bound during a fan-out; closed as slow right after it.
    pub const EVICT: u16 = 1 << 5;
    /// Waiting for its replay from the cluster: frames collect, nothing is written.
    pub const HELD: u16 = 1 << 7;
    /// A request-phase connection's task is writing an answer: its timer bounds the write
    /// (a client that does not read its answers), not the wait for a request.
    pub const ANSWERING: u16 = 1 << 8;
    /// Follows `sys:stats`: its close lowers the count that keeps the stream going.
    pub const STATS: u16 = 1 << 6;
    /// An HTTP/1.0 stream: its body is delimited by the close, so frames go out without
    /// their chunk framing.
    pub const CLOSE_DELIMITED: u16 = 1 << 9;
    /// A TLS stream: its frames are sealed at write time by its session (kept by the
    /// worker's `stream::Writes`, not in this entry).
    pub const TLS: u16 = 1 << 10;
}

/// One connection's state: about 90 bytes for an idle subscriber.
pub struct Conn {
    pub fd: RawFd,
    /// Distinguishes this connection from earlier users of the same slab slot in the
    /// kernel's completion tokens.
    pub gen: u32,
    /// Changed only through [`Conn::enter`].
    phase: Phase,
    pub flags: u16,
    /// Tick of the last write started: a heartbeat is due `heartbeat` after it.
    pub last_write: u32,
    /// Tick since which queued frames have waited without the queue draining (0: none
    /// waiting); a subscriber stuck longer than the write timeout is evicted as slow.
    pub stalled_since: u32,
    /// Tick at which the stream must end (max lifetime, token expiry); 0 for never.
    pub expires: u32,
    /// Why a draining stream is ending (shutdown, lifetime, token expiry).
    pub ending: Option<CloseReason>,
    /// The last event id queued to this connection: later frames with a smaller or equal
    /// id are skipped, which makes a multi-topic event arrive once and the replay/live
    /// seam gap- and duplicate-free.
    pub last_id: u64,
    /// Where this subscriber sits in the hub, one link per topic.
    pub links: SmallVec<[Link; 1]>,
    pub out: Out,
}

impl Conn {
    pub fn new(fd: RawFd, gen: u32) -> Conn {
        Conn {
            fd,
            gen,
            phase: Phase::Request,
            flags: 0,
            last_write: 0,
            stalled_since: 0,
            expires: 0,
            ending: None,
            last_id: 0,
            links: SmallVec::new(),
            out: Out::Empty,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether its write has been in the kernel for at least `after` ticks (at tick
    /// `now`) without the kernel taking any of it: the peer stopped reading. A reader
    /// that reads, however slowly, moves `stalled_since` at every write that makes
    /// progress, and its next write starts the count again.
    ///
    /// Frames that wait for the worker to start the write do not count, however long:
    /// that is the worker's load, not the reader's. Counted (since the last progress),
    /// readers of a 1 KiB fan-out that waited 1.5-3 s in a saturated worker's bulk lane
    /// were held to their bound the moment their write started, and evicted as slow by
    /// the dozen (issue 14's mixed run, one run in three).
    pub fn stuck(&self, now: u32, after: u32) -> bool {
        self.flags & (flags::WRITING | flags::BLOCKED) != 0
            && self.stalled_since != 0
            && now.wrapping_sub(self.stalled_since) >= after
            && now.wrapping_sub(self.last_write) >= after
    }

    /// Every phase change goes through here; the lifecycle only moves forward:
    /// Request → Stream → Draining → Closing, with Closing reachable from each.
    pub fn enter(&mut self, next: Phase) {
        let legal = matches!(
            (self.phase, next),
            (Phase::Request, Phase::Stream)
                | (Phase::Stream, Phase::Draining)
                | (
                    Phase::Request | Phase::Stream | Phase::Draining,
                    Phase::Closing
                )
        );
        debug_assert!(legal, "phase {:?} -> {next:?}", self.phase);
        self.phase = next;
    }

    pub fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }

    pub fn set(&mut self, flag: u16) {
        self.flags |= flag;
    }

    pub fn clear(&mut self, flag: u16) {
        self.flags &= !flag;
    }

    /// How this stream's body is delimited (chunks, or the close for HTTP/1.0).
    pub fn body(&self) -> Body {
        match self.has(flags::CLOSE_DELIMITED) {
            true => Body::Close,
            false => Body::Chunked,
        }
    }

    /// Queues a (chunk-framed) frame as this stream sends it.
    pub fn queue(&mut self, frame: &Bytes) {
        let frame = match self.has(flags::CLOSE_DELIMITED) {
            false => frame.clone(),
            true => Body::Close.frame(frame),
        };
        self.out.push(frame);
    }

    /// Whether the kernel still holds references to this entry's buffers or token.
    pub fn in_kernel(&self) -> bool {
        self.has(flags::WRITING) || self.has(flags::WATCHING)
    }
}

/// Why a connection ended. Every close has one and each is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed or reset.
    Peer,
    /// A keep-alive connection sat idle past its timeout.
    Idle,
    /// A subscriber did not read fast enough.
    Slow,
    /// No complete request head within the handshake timeout.
    HandshakeTimeout,
    /// Server shutdown.
    Shutdown,
    /// The stream reached its maximum lifetime.
    Lifetime,
    /// Refused or ended by authorization (bad token, token expired mid-stream).
    Auth,
    /// The request was answered with an error status and closed.
    Rejected,
    /// An I/O error other than the peer going away.
    Error,
    /// A TLS handshake refused, or a TLS protocol error after it (a record that does not
    /// open, a fatal alert, a message with no place after the handshake).
    Tls,
    /// A plaintext HTTP request on the TLS port (answered 400 first).
    Plaintext,
}

impl CloseReason {
    pub const ALL: [CloseReason; 11] = [
        CloseReason::Peer,
        CloseReason::Idle,
        CloseReason::Slow,
        CloseReason::HandshakeTimeout,
        CloseReason::Shutdown,
        CloseReason::Lifetime,
        CloseReason::Auth,
        CloseReason::Rejected,
        CloseReason::Error,
        CloseReason::Tls,
        CloseReason::Plaintext,
    ];

    /// The metric label.
    pub const fn name(self) -> &'static str {
        match self {
            CloseReason::Peer => "peer",
            CloseReason::Idle => "idle",
            CloseReason::Slow => "slow",
            CloseReason::HandshakeTimeout => "handshake_timeout",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Lifetime => "lifetime",
            CloseReason::Auth => "auth",
            CloseReason::Rejected => "rejected",
            CloseReason::Error => "error",
            CloseReason::Tls => "tls",
            CloseReason::Plaintext => "plaintext",
        }
    }

    pub const fn index(self) -> usize {
        self as usize
    }

    /// Maps an errno from a write or watch to a reason.
    pub fn from_errno(errno: i32) -> CloseReason {
        match errno {
            libc::EPIPE | libc::ECONNRESET | libc::ENOTCONN | libc::ESHUTDOWN => CloseReason::Peer,
            _ => CloseReason::Error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_index_their_table() {
        for (i, r) in CloseReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?}");
        }
    }

    #[test]
    fn an_idle_subscriber_entry_stays_small() {
        let size = std::mem::size_of::<Conn>();
        assert!(size <= 96, "Conn grew to {size} bytes");
    }
}
