//! The kernel interface of the subscriber data plane: start a write, watch for a peer's
//! close, collect what finished.
//!
//! Streaming subscribers own no task and no future (a monoio task plus a pending poll
//! costs about 540 bytes per idle connection); their I/O goes through a private
//! io_uring per worker instead, each operation tagged with the connection's slab key and
//! generation. Where io_uring is unavailable the same calls run on an epoll instance and
//! plain nonblocking `writev`, reporting their results as the same [`Completion`]s, so the
//! connection logic above is written once.

#![allow(unsafe_code)] // one of the three homes of `unsafe` (see lib.rs): the write submission

use std::io;
use std::os::fd::{OwnedFd, RawFd};

use super::epoll::Epoll;
use super::out::Out;
use super::ring::Ring;

/// What an operation was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A write of queued frames; `res` is bytes written or `-errno`.
    Write,
    /// The peer-close watch fired; `res` is the poll events or `-errno`.
    Watch,
    /// (epoll plane only) the socket became writable again after `-EAGAIN`.
    Writable,
}

/// A connection's slab index and generation packed for the kernel's `user_data`, so a
/// completion that arrives after its connection's slot was reused is recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    pub key: u32,
    pub gen: u32,
}

const GEN_BITS: u32 = 28;
const GEN_MASK: u32 = (1 << GEN_BITS) - 1;

impl Token {
    pub fn pack(self, op: Op) -> u64 {
        let op = match op {
            Op::Write => 1u64,
            Op::Watch => 2,
            Op::Writable => 3,
        };
        (op << 60) | (u64::from(self.gen & GEN_MASK) << 32) | u64::from(self.key)
    }

    pub fn unpack(data: u64) -> Option<(Token, Op)> {
        let op = match data >> 60 {
            1 => Op::Write,
            2 => Op::Watch,
            3 => Op::Writable,
            _ => return None,
        };
        let token = Token {
            key: data as u32,
            gen: (data >> 32) as u32 & GEN_MASK,
        };
        Some((token, op))
    }

    /// Generations wrap within the packed width.
    pub fn next_gen(gen: u32) -> u32 {
        gen.wrapping_add(1) & GEN_MASK
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Completion {
    pub token: Token,
    pub op: Op,
    pub res: i32,
}

/// Which mechanism a worker's plane runs on. One per worker, so the ring's size does
/// not matter.
#[allow(clippy::large_enum_variant)]
pub enum Plane {
    Ring(Ring),
    Epoll(Epoll),
}

impl Plane {
    pub fn ring(entries: u32) -> io::Result<Plane> {
        Ring::new(entries).map(Plane::Ring)
    }

    pub fn epoll() -> io::Result<Plane> {
        Epoll::new().map(Plane::Epoll)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Plane::Ring(_) => "io_uring",
            Plane::Epoll(_) => "epoll",
        }
    }

    /// A duplicate of the descriptor that reads readable while completions wait, for
    /// the loop's readiness poll (`worker::events`).
    pub fn pollable(&self) -> io::Result<OwnedFd> {
        match self {
            Plane::Ring(r) => r.pollable(),
            Plane::Epoll(e) => e.pollable(),
        }
    }

    /// Whether operations finish after the call that starts them (io_uring), rather than
    /// within it (epoll).
    pub fn completes_later(&self) -> bool {
        matches!(self, Plane::Ring(_))
    }

    /// Arms a one-shot notification for the peer closing (or sending anything).
    pub fn watch(&mut self, token: Token, fd: RawFd) {
        match self {
            Plane::Ring(r) => r.watch(token, fd),
            Plane::Epoll(e) => e.watch(token, fd),
        }
    }

    /// Called before closing `fd`, when no operation of it is pending in the kernel.
    pub fn forget(&mut self, fd: RawFd) {
        if let Plane::Epoll(e) = self {
            e.forget(fd);
        }
    }

    /// Starts writing what `out` holds (up to one write's worth); the result arrives as a
    /// [`Completion`] for `token`.
    ///
    /// The kernel reads the frames, and for several frames the iovec array, until that
    /// completion is collected. That holds because of how the worker keeps an [`Out`]:
    /// frames leave it only through [`Out::consume`], called with a write's completion; a
    /// connection's `Out` is dropped only by `Worker::release`, which refuses while the
    /// connection has a write in flight (`flags::WRITING`); and the iovec array of
    /// several frames lives in the `Out`'s boxed queue, which `Out::iov` alone rebuilds.
    pub fn write(&mut self, token: Token, fd: RawFd, out: &mut Out) {
        let mut one = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }];
        let iov = out.iov(&mut one);
        // SAFETY: the iovecs stay valid until the completion, as argued above; a single
        // iovec is copied into the submission itself (ring) or used at once (epoll).
        unsafe { self.write_iov(token, fd, iov) }
    }

    /// Starts writing `sealed` (a TLS connection's sealed records); the result arrives
    /// as a [`Completion`] for `token`.
    ///
    /// The kernel reads the bytes until that completion is collected. That holds because
    /// a TLS session keeps its sealed bytes until the completion of their write
    /// (`Writes::on_write` alone advances them), and the session is dropped only with
    /// its connection's entry, which `Worker::release` refuses to free while a write is
    /// in flight.
    pub fn send(&mut self, token: Token, fd: RawFd, sealed: &bytes::Bytes) {
        let one = [libc::iovec {
            iov_base: sealed.as_ptr() as *mut libc::c_void,
            iov_len: sealed.len(),
        }];
        // SAFETY: the bytes stay valid until the completion, as argued above; the single
        // iovec is copied into the submission itself (ring) or used at once (epoll).
        unsafe { self.write_iov(token, fd, &one) }
    }

    /// # Safety
    /// The memory each iovec points to, and the iovec array itself, must stay valid and
    /// unmoved until this write's completion has been collected.
    unsafe fn write_iov(&mut self, token: Token, fd: RawFd, iov: &[libc::iovec]) {
        match self {
            // SAFETY: forwarded from the caller.
            Plane::Ring(r) => unsafe { r.write(token, fd, iov) },
            // SAFETY: forwarded from the caller.
            Plane::Epoll(e) => unsafe { e.write(token, fd, iov) },
        }
    }

    /// Hands queued operations to the kernel (one system call for the whole batch).
    pub fn submit(&mut self) {
        if let Plane::Ring(r) = self {
            r.submit();
        }
    }

    /// Makes the plane's descriptor readable from user space, so that the loop's next
    /// turn comes only after the runtime's next pass over its own I/O (publish reads,
    /// accepts) rather than straight away. Returns false on the epoll plane: monoio's
    /// legacy driver checks an epoll descriptor's readiness inline, so a nudge there
    /// would end the park at once, with no pass in between (a saturated worker then
    /// never accepted: probes waited up to 6.9 s).
    pub fn nudge(&mut self) -> bool {
        match self {
            Plane::Ring(r) => {
                r.nudge();
                true
            }
            Plane::Epoll(_) => false,
        }
    }

    /// Whether completions were already collected from the kernel (or, on the epoll
    /// plane, produced inline) without making the descriptor readable.
    pub fn has_collected(&self) -> bool {
        match self {
            Plane::Ring(r) => r.has_stashed(),
            Plane::Epoll(e) => e.has_stashed(),
        }
    }

    /// Appends every finished operation to `out`.
    pub fn complete(&mut self, out: &mut Vec<Completion>) {
        match self {
            Plane::Ring(r) => r.complete(out),
            Plane::Epoll(e) => e.complete(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_wrap() {
        for (key, gen) in [(0, 0), (1, 1), (u32::MAX, GEN_MASK), (77, 12345)] {
            for op in [Op::Write, Op::Watch, Op::Writable] {
                let t = Token { key, gen };
                assert_eq!(Token::unpack(t.pack(op)), Some((t, op)));
            }
        }
        assert_eq!(Token::next_gen(GEN_MASK), 0);
        assert_eq!(Token::unpack(0), None);
    }
}
