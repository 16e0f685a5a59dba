//! The io_uring side of the data plane: a private ring per worker.
//!
//! monoio 0.2.4 gives every operation its own future; a subscriber that owns no future
//! needs its writes and close-watches issued some other way, so each worker keeps this
//! second ring next to monoio's. Operations carry the connection's token in `user_data`.
//! The ring's own descriptor polls readable while its completion queue is not empty; the
//! worker's loop waits on exactly that (`worker::events`), so no eventfd is needed.

#![allow(unsafe_code)] // one of the three homes of `unsafe` (see lib.rs): ring submissions

use std::io;
use std::os::fd::{AsFd, OwnedFd, RawFd};

use io_uring::{opcode, squeue, types, IoUring};

use super::plane::{Completion, Op, Token};

/// `user_data` of the no-op a nudge submits (no token packs to 0).
const NUDGE: u64 = 0;

pub struct Ring {
    ring: IoUring,
    /// Operations pushed since the last submit.
    queued: u32,
    /// Completions reaped early because the submission queue filled mid-burst.
    stash: Vec<Completion>,
}

impl Ring {
    pub fn new(entries: u32) -> io::Result<Ring> {
        let entries = entries.clamp(64, 32768);
        // Completions can outnumber one queue's worth of submissions between reaps (a
        // burst submits several full queues), so give them twice the room. Completions
        // that arrive while the worker runs wait for its next system call instead of
        // interrupting it (COOP_TASKRUN, as monoio's ring: see `server::cooperative_ring`).
        let ring = IoUring::builder()
            .setup_cqsize(entries * 2)
            .setup_submit_all()
            .setup_single_issuer()
            .setup_coop_taskrun()
            .build(entries)
            .or_else(|_| IoUring::builder().setup_cqsize(entries * 2).build(entries))?;
        Ok(Ring {
            ring,
            queued: 0,
            stash: Vec::new(),
        })
    }

    pub fn pollable(&self) -> io::Result<OwnedFd> {
        self.ring.as_fd().try_clone_to_owned()
    }

    /// Makes the ring's descriptor readable: a no-op entry completes at once, unless a
    /// completion already waits.
    pub fn nudge(&mut self) {
        let mut cq = self.ring.completion();
        cq.sync();
        if cq.is_empty() {
            drop(cq);
            self.push(opcode::Nop::new().build().user_data(NUDGE));
            self.submit();
        }
    }

    pub fn has_stashed(&self) -> bool {
        !self.stash.is_empty()
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

    pub fn complete(&mut self, out: &mut Vec<Completion>) {
        out.append(&mut self.stash);
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
