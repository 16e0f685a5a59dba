//! The keep-alive connections of a worker that wait for their next request, so that a
//! long turn of wide fan-out can end as soon as one of them has a request in.
//!
//! Under a saturated 1 KiB fan-out a turn's flush takes about 1 ms on average here, and
//! up to several: each coalesced write of ~100 frames costs tens of µs of in-kernel
//! copying at submit. A publisher that waits for its answer before it sends its next
//! request (pipeline 1, what most HTTP clients do) gets one answer per turn, and 9,000
//! one-subscriber topics published at 2,000 events/s got 1,000-1,200 (issue 14's mixed
//! run, `benches/mixed.sh`). While any reader is listed, [`super::Writes::flush`]
//! submits the bulk lane in groups of about [`GROUP_TIME`] and looks, after each,
//! whether a reader's socket holds bytes; if one does, the flush ends there and the
//! rest waits for the next turn, after monoio's pass has run the publisher. (On a worker
//! with subscribers of narrow topics the bulk lane goes in such groups anyway, and
//! events for them published meanwhile are written between two groups: see
//! `super::delivery::Fanout::run_narrow`.)
//! Connections are listed only on io_uring, while flushes are long ([`Readers::busy`]), and not
//! when their last publish went to a heavy topic: the wide fan-out's own publisher,
//! answered sooner, only adds to the queues that make the flushes long (listed too, it
//! gave 15% more deliveries/s of 64 B to 19,000 subscribers at 13% less CPU each, but
//! the p99 delivery latency at saturation went from 1.0 s to 1.8 s).
//!
//! The fan-out is not cut the same way: tried, it answered the publisher no sooner
//! (1,270 personal events/s against 1,457 with the flush cut alone, medians of 3) and
//! left the events already published waiting longer in the inbox.
//!
//! A listed connection's task waits for readiness, not in a read (see
//! `conn::handshake`): an io_uring read that is already armed takes the bytes out of
//! the socket the moment the worker next returns from any system call, so the socket
//! would look empty from here while the request sits in monoio's completion queue.

use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::Duration;

/// Readers looked at, at most (the first listed): publishers are few; an idle
/// keep-alive connection beyond them only goes unseen.
pub const MAX_READERS: usize = 32;

/// How long a group of bulk writes may take between two looks at the readers. In the
/// mixed run (`benches/mixed.sh`, three runs each) the personal class got 1,194-1,317
/// events/s of 2,000 at 100 µs, 1,980-2,000 at 50 µs (p99 11-20 ms, one run 86 ms), and
/// 1,986-2,000 at 25 µs (p99 10-66 ms); the hot topic's deliveries were the same.
pub const GROUP_TIME: Duration = Duration::from_micros(50);

/// The descriptors of the connections waiting for a request on one worker.
#[derive(Default)]
pub struct Readers {
    fds: RefCell<Vec<RawFd>>,
    /// The last flush spent longer than [`GROUP_TIME`] on bulk writes.
    busy: Cell<bool>,
}

impl Readers {
    /// Whether a connection about to wait for a request should be listed (and wait
    /// for readiness first, one more operation): only while flushes are long.
    pub fn busy(&self) -> bool {
        self.busy.get()
    }

    pub fn set_busy(&self, busy: bool) {
        self.busy.set(busy);
    }

    /// Lists `fd` until the returned guard is dropped (when the list has room).
    pub fn reading(self: &Rc<Self>, fd: RawFd) -> Reading {
        let mut fds = self.fds.borrow_mut();
        let listed = fds.len() < MAX_READERS;
        if listed {
            fds.push(fd);
        }
        Reading {
            readers: listed.then(|| self.clone()),
            fd,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.fds.borrow().is_empty()
    }

    /// Whether any listed connection has bytes (or a hang-up) waiting: one `poll`.
    pub fn any_input(&self) -> bool {
        crate::sys::any_readable(&self.fds.borrow())
    }
}

/// A connection listed in [`Readers`] while it waits for its next request.
pub struct Reading {
    readers: Option<Rc<Readers>>,
    fd: RawFd,
}

impl Drop for Reading {
    fn drop(&mut self) {
        if let Some(readers) = &self.readers {
            let mut fds = readers.fds.borrow_mut();
            if let Some(at) = fds.iter().position(|&fd| fd == self.fd) {
                fds.swap_remove(at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn sees_input_only_while_listed_and_bounded() {
        let readers = Rc::new(Readers::default());
        let (mut a, b) = UnixStream::pair().unwrap();
        let guard = readers.reading(b.as_raw_fd());
        assert!(!readers.any_input(), "nothing sent yet");
        a.write_all(b"POST").unwrap();
        assert!(readers.any_input());
        drop(guard);
        assert!(readers.is_empty());
        assert!(!readers.any_input(), "an unlisted socket is not looked at");

        let pairs: Vec<_> = (0..MAX_READERS + 1)
            .map(|_| UnixStream::pair().unwrap())
            .collect();
        let guards: Vec<_> = pairs
            .iter()
            .map(|(_, b)| readers.reading(b.as_raw_fd()))
            .collect();
        // The one past the bound is not listed: its input goes unseen.
        (&pairs[MAX_READERS].0).write_all(b"x").unwrap();
        assert!(!readers.any_input());
        (&pairs[0].0).write_all(b"x").unwrap();
        assert!(readers.any_input());
        drop(guards);
        assert!(readers.is_empty());
    }
}
