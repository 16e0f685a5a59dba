//! The io_uring side of the data plane: a private ring per worker.
//!
//! monoio 0.2.4 gives every operation its own future; a subscriber that owns no future
//! needs its writes and close-watches issued some other way, so each worker keeps this
//! second ring next to monoio's. Operations carry the connection's token in `user_data`.
//! A registered eventfd (the doorbell) tells the worker's runtime that completions
//! arrived while the loop was parked. While the loop runs, notifications are muted
//! (`IORING_CQ_EVENTFD_DISABLED`): completions of its own submits are reaped by its next
//! turn instead of costing a wake-up each. (The "async only" eventfd mode does not fit:
//! it signals only completions posted by io-wq threads, not poll-driven ones such as a
//! send that waited for socket space or a peer's close.)

use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types, IoUring};

use super::plane::{Completion, Op, Token};
use crate::sys;

pub struct Ring {
    ring: IoUring,
    /// Rung by the kernel for completions posted while the loop is parked.
    doorbell: RawFd,
    /// Operations pushed since the last submit.
    queued: u32,
    /// Completions reaped early because the submission queue filled mid-burst.
    stash: Vec<Completion>,
}

impl Ring {
    pub fn new(entries: u32) -> io::Result<Ring> {
        let entries = entries.clamp(64, 32768);
        // Completions can outnumber one queue's worth of submissions between reaps (a
        // burst submits several full queues), so give them twice the room.
        let ring = IoUring::builder()
            .setup_cqsize(entries * 2)
            .setup_submit_all()
            .setup_single_issuer()
            .build(entries)
            .or_else(|_| IoUring::builder().setup_cqsize(entries * 2).build(entries))?;
        let doorbell = sys::eventfd()?;
        if let Err(e) = ring.submitter().register_eventfd(doorbell) {
            sys::close(doorbell);
            return Err(e);
        }
        Ok(Ring {
            ring,
            doorbell,
            queued: 0,
            stash: Vec::new(),
        })
    }

    pub fn doorbell(&self) -> RawFd {
        self.doorbell
    }

    pub fn watch(&mut self, token: Token, fd: RawFd) {
        let events = (libc::POLLIN | libc::POLLRDHUP) as u32;
        let sqe = opcode::PollAdd::new(types::Fd(fd), events).build();
        self.push(sqe.user_data(token.pack(Op::Watch)));
    }

    /// # Safety
    /// See [`super::plane::Plane::write`].
    pub unsafe fn write(&mut self, token: Token, fd: RawFd, iov: &[libc::iovec]) {
        let sqe = match iov {
            [one] => {
                opcode::Send::new(types::Fd(fd), one.iov_base as *const u8, one.iov_len as u32)
                    .flags(libc::MSG_NOSIGNAL)
                    .build()
            }
            many => opcode::Writev::new(types::Fd(fd), many.as_ptr(), many.len() as u32).build(),
        };
        self.push(sqe.user_data(token.pack(Op::Write)));
    }

    pub fn submit(&mut self) {
        if self.queued == 0 {
            return;
        }
        loop {
            match self.ring.submit() {
                Ok(_) => break,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                // EBUSY: the completion queue is full; make room and try again.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => self.reap_into_stash(),
                Err(e) => {
                    log::error!(error:% = e; "io_uring submit failed");
                    break;
                }
            }
        }
        self.queued = 0;
    }

    /// The loop is running: completions need not ring the doorbell.
    pub fn mute(&mut self) {
        self.ring.completion().disable_eventfd();
    }

    /// The loop is about to park: completions from now on ring the doorbell. Returns
    /// whether some already arrived (then the loop must take another turn instead).
    pub fn unmute(&mut self) -> bool {
        let mut cq = self.ring.completion();
        cq.enable_eventfd();
        cq.sync();
        !cq.is_empty() || !self.stash.is_empty()
    }

    pub fn complete(&mut self, out: &mut Vec<Completion>) {
        out.append(&mut self.stash);
        sys::eventfd_clear(self.doorbell);
        reap(&mut self.ring, out);
    }

    fn push(&mut self, sqe: squeue::Entry) {
        loop {
            // SAFETY: every buffer an entry points to is kept alive by the connection that
            // issued it until the entry's completion is collected (Plane::write's
            // contract); poll entries point to nothing.
            if unsafe { self.ring.submission().push(&sqe) }.is_ok() {
                self.queued += 1;
                return;
            }
            self.submit();
            self.reap_into_stash();
        }
    }

    fn reap_into_stash(&mut self) {
        let mut stash = std::mem::take(&mut self.stash);
        reap(&mut self.ring, &mut stash);
        self.stash = stash;
    }
}

fn reap(ring: &mut IoUring, out: &mut Vec<Completion>) {
    for cqe in ring.completion() {
        if let Some((token, op)) = Token::unpack(cqe.user_data()) {
            out.push(Completion {
                token,
                op,
                res: cqe.result(),
            });
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        sys::close(self.doorbell);
    }
}
