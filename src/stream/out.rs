//! A subscriber's outgoing frames: what is being written and what waits behind it.
//!
//! An idle subscriber holds [`Out::Empty`] (no allocation). One frame needs no queue: it is
//! sent straight from its shared `Bytes`. Frames that arrive while a write is in flight
//! go into a boxed queue, and the next write takes all of them at once (one `writev`):
//! that coalescing is what keeps the cost per delivery down under load.

use std::collections::VecDeque;

use bytes::{Buf, Bytes};

/// At most this many frames per write: the kernel's `UIO_MAXIOV`. A subscriber that fell
/// behind (its worker busy elsewhere) catches up in one write instead of one per sweep.
const MAX_IOV: usize = 1024;

/// Frames are added to a write until it carries this many bytes: about what a socket's
/// send buffer takes at once (`--sndbuf` defaults to 128 KiB), so no iovec is built
/// for bytes the kernel would refuse.
const WRITE_BYTES: usize = 256 << 10;

#[derive(Default)]
pub enum Out {
    #[default]
    Empty,
    One(Bytes),
    Many(Box<Queue>),
}

#[derive(Default)]
pub struct Queue {
    frames: VecDeque<Bytes>,
    /// Bytes of `frames` not yet written.
    bytes: usize,
    /// The iovecs of the write in flight; untouched until its completion.
    iov: Vec<libc::iovec>,
}

impl Out {
    pub fn is_empty(&self) -> bool {
        matches!(self, Out::Empty)
    }

    /// Frames queued, including the ones in flight.
    pub fn len(&self) -> usize {
        match self {
            Out::Empty => 0,
            Out::One(_) => 1,
            Out::Many(q) => q.frames.len(),
        }
    }

    /// Bytes queued and not yet written, including the ones in flight.
    pub fn bytes(&self) -> usize {
        match self {
            Out::Empty => 0,
            Out::One(frame) => frame.len(),
            Out::Many(q) => q.bytes,
        }
    }

    /// The queued frames, oldest first (a partly written one from where it stands).
    pub fn frames(&self) -> impl Iterator<Item = &Bytes> {
        let (one, many) = match self {
            Out::Empty => (None, None),
            Out::One(frame) => (Some(frame), None),
            Out::Many(q) => (None, Some(q.frames.iter())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }

    pub fn push(&mut self, frame: Bytes) {
        match self {
            Out::Empty => *self = Out::One(frame),
            Out::One(_) => {
                let Out::One(first) = std::mem::take(self) else {
                    unreachable!()
                };
                let mut q = Box::<Queue>::default();
                q.frames.reserve(4);
                q.bytes = first.len() + frame.len();
                q.frames.push_back(first);
                q.frames.push_back(frame);
                *self = Out::Many(q);
            }
            Out::Many(q) => {
                q.bytes += frame.len();
                q.frames.push_back(frame);
            }
        }
    }

    /// Puts `frames` ahead of everything queued (nothing of this queue has been written:
    /// the connection was held).
    pub fn prepend(&mut self, frames: Vec<Bytes>) {
        let mut q = Box::<Queue>::default();
        q.frames.extend(frames);
        match std::mem::take(self) {
            Out::Empty => {}
            Out::One(frame) => q.frames.push_back(frame),
            Out::Many(rest) => q.frames.extend(rest.frames),
        }
        q.bytes = q.frames.iter().map(Bytes::len).sum();
        *self = match q.frames.len() {
            0 => Out::Empty,
            1 => Out::One(q.frames.pop_front().expect("one frame")),
            _ => Out::Many(q),
        };
    }

    /// The iovecs for the next write: every queued frame, up to `MAX_IOV`. The memory they
    /// point to stays valid until [`Out::consume`] (the frames are not dropped before), and
    /// for several frames the array itself stays put (it lives in the boxed queue).
    pub fn iov<'a>(&'a mut self, one: &'a mut [libc::iovec; 1]) -> &'a [libc::iovec] {
        match self {
            Out::Empty => &[],
            Out::One(frame) => {
                one[0] = iovec(frame);
                &one[..]
            }
            Out::Many(q) => {
                q.iov.clear();
                let mut bytes = 0;
                for frame in q.frames.iter().take(MAX_IOV) {
                    if bytes >= WRITE_BYTES {
                        break;
                    }
                    bytes += frame.len();
                    q.iov.push(iovec(frame));
                }
                &q.iov
            }
        }
    }

    /// Drops what a write of `n` bytes sent (advancing a partly sent frame).
    pub fn consume(&mut self, mut n: usize) {
        match self {
            Out::Empty => debug_assert_eq!(n, 0, "wrote bytes with nothing queued"),
            Out::One(frame) => {
                debug_assert!(
                    n <= frame.len(),
                    "wrote {n} of a {}-byte frame",
                    frame.len()
                );
                if n >= frame.len() {
                    *self = Out::Empty;
                } else {
                    frame.advance(n);
                }
            }
            Out::Many(q) => {
                q.bytes -= n.min(q.bytes);
                while n > 0 {
                    let Some(front) = q.frames.front_mut() else {
                        debug_assert!(false, "wrote {n} bytes more than queued");
                        break;
                    };
                    if n < front.len() {
                        front.advance(n);
                        break;
                    }
                    n -= front.len();
                    q.frames.pop_front();
                }
                if q.frames.is_empty() {
                    *self = Out::Empty;
                }
            }
        }
    }
}

fn iovec(frame: &Bytes) -> libc::iovec {
    libc::iovec {
        iov_base: frame.as_ptr() as *mut libc::c_void,
        iov_len: frame.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(unsafe_code)] // reads back what the iovecs point to
    fn queued_bytes(out: &mut Out) -> Vec<u8> {
        let mut one = [iovec(&Bytes::new())];
        out.iov(&mut one)
            .iter()
            // SAFETY: the iovecs point into frames `out` still owns.
            .flat_map(|v| unsafe { std::slice::from_raw_parts(v.iov_base as *const u8, v.iov_len) })
            .copied()
            .collect()
    }

    #[test]
    fn one_frame_needs_no_queue_and_partial_writes_advance() {
        let mut out = Out::default();
        out.push(Bytes::from_static(b"hello"));
        assert!(matches!(out, Out::One(_)));
        out.consume(2);
        assert_eq!(queued_bytes(&mut out), b"llo");
        out.consume(3);
        assert!(out.is_empty());
    }

    #[test]
    fn frames_behind_a_write_coalesce_into_one_iov() {
        let mut out = Out::default();
        for f in [&b"ab"[..], b"cd", b"ef"] {
            out.push(Bytes::from_static(f));
        }
        assert_eq!((out.len(), out.bytes()), (3, 6));
        assert_eq!(queued_bytes(&mut out), b"abcdef");
        out.consume(3);
        assert_eq!(queued_bytes(&mut out), b"def");
        assert_eq!(out.bytes(), 3);
        out.prepend(vec![Bytes::from_static(b"z")]);
        assert_eq!(out.bytes(), 4);
        out.consume(1);
        out.push(Bytes::from_static(b"gh"));
        assert_eq!(out.bytes(), 5);
        assert_eq!(
            out.frames().map(|f| &f[..]).collect::<Vec<_>>(),
            [&b"d"[..], b"ef", b"gh"]
        );
        out.consume(5);
        assert!(out.is_empty(), "a drained queue frees its box");
    }

    #[test]
    fn writes_take_at_most_max_iov_frames() {
        let mut out = Out::default();
        for _ in 0..MAX_IOV + 10 {
            out.push(Bytes::from_static(b"x"));
        }
        assert_eq!(queued_bytes(&mut out).len(), MAX_IOV);
        out.consume(MAX_IOV);
        assert_eq!(out.len(), 10);
    }

    #[test]
    fn writes_stop_adding_frames_past_the_byte_budget() {
        let mut out = Out::default();
        let frame = Bytes::from(vec![b'x'; 100 << 10]);
        for _ in 0..5 {
            out.push(frame.clone());
        }
        // 100 KiB, 200 KiB (< 256 KiB), 300 KiB: three frames, then the budget is spent.
        assert_eq!(queued_bytes(&mut out).len(), 300 << 10);
        assert_eq!(out.len(), 5);
    }
}
