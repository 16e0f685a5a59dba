//! The legacy side of the data plane, for kernels or sandboxes without io_uring: writes
//! are plain nonblocking `writev` calls whose results are reported as completions right
//! away, and one edge-triggered epoll registration per subscriber reports peer closes and
//! renewed writability. The epoll descriptor itself is what the loop polls.

#![allow(unsafe_code)] // one of the three homes of `unsafe` (see lib.rs): writev and descriptor borrows

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};

use super::plane::{Completion, Op, Token};
use crate::sys::{self, epoll};

pub struct Epoll {
    epfd: RawFd,
    events: Vec<epoll::Event>,
    /// Results of writes made since the last collection.
    stash: Vec<Completion>,
}

const WATCH_EVENTS: u32 =
    (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLOUT | libc::EPOLLET) as u32;
const CLOSE_EVENTS: u32 =
    (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        Ok(Epoll {
            epfd: epoll::create()?,
            events: Vec::with_capacity(1024),
            stash: Vec::new(),
        })
    }

    pub fn pollable(&self) -> io::Result<OwnedFd> {
        // SAFETY: `epfd` is open for as long as `self` lives, and the borrow ends here.
        unsafe { BorrowedFd::borrow_raw(self.epfd) }.try_clone_to_owned()
    }

    /// Registers once; edge-triggered, so re-arming after a read is not needed (a second
    /// call finds the registration in place).
    pub fn watch(&mut self, token: Token, fd: RawFd) {
        if let Err(e) = epoll::add(self.epfd, fd, WATCH_EVENTS, token.pack(Op::Watch)) {
            if e.raw_os_error() != Some(libc::EEXIST) {
                self.stash.push(Completion {
                    token,
                    op: Op::Watch,
                    res: -libc::EBADF,
                });
            }
        }
    }

    pub fn forget(&mut self, fd: RawFd) {
        epoll::delete(self.epfd, fd);
    }

    /// # Safety
    /// The iovecs must point to readable memory for the duration of the call.
    pub unsafe fn write(&mut self, token: Token, fd: RawFd, iov: &[libc::iovec]) {
        // SAFETY: forwarded from the caller; the write is complete when this returns.
        let res = unsafe { sys::writev(fd, iov) };
        self.stash.push(Completion {
            token,
            op: Op::Write,
            res,
        });
    }

    pub fn has_stashed(&self) -> bool {
        !self.stash.is_empty()
    }

    pub fn complete(&mut self, out: &mut Vec<Completion>) {
        out.append(&mut self.stash);
        while epoll::wait(self.epfd, &mut self.events) > 0 {
            for ev in &self.events {
                let (events, data) = (ev.events, ev.u64);
                let Some((token, _)) = Token::unpack(data) else {
                    continue;
                };
                if events & (libc::EPOLLOUT as u32) != 0 {
                    out.push(Completion {
                        token,
                        op: Op::Writable,
                        res: 0,
                    });
                }
                if events & CLOSE_EVENTS != 0 {
                    out.push(Completion {
                        token,
                        op: Op::Watch,
                        res: events as i32,
                    });
                }
            }
            if self.events.len() < self.events.capacity() {
                break;
            }
        }
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        sys::close(self.epfd);
    }
}
