//! What a connection task may ask of its worker while it serves requests: its request
//! deadline, the write of an answer, whether it timed out, the hand-over as a stream,
//! a resume from the cluster, and its release. One narrow handle per connection, so a
//! handshake never holds the whole worker.

use std::cell::RefCell;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::cluster::Fetched;
use crate::conn::subscribe::{RemoteResume, Subscribe};
use crate::conn::{flags, CloseReason};
use crate::metrics::WorkerStats;
use crate::shared::Shared;
use crate::stream::readers::{Readers, Reading};
use crate::tls::session::Session;

use super::Worker;

/// A connection's slab entry on its worker, seen from the connection's task.
pub struct Port {
    worker: Rc<RefCell<Worker>>,
    shared: Arc<Shared>,
    index: usize,
    key: u32,
    readers: Rc<Readers>,
}

impl Port {
    /// Registers a newly accepted connection on `worker`.
    pub fn admit(worker: &Rc<RefCell<Worker>>, fd: RawFd) -> Port {
        let mut w = worker.borrow_mut();
        let key = w.admit(fd);
        Port {
            worker: worker.clone(),
            shared: w.shared.clone(),
            index: w.index,
            key,
            readers: w.readers.clone(),
        }
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// This worker's counters (shared atomics: no borrow of the worker).
    pub fn stats(&self) -> &WorkerStats {
        &self.shared.stats[self.index]
    }

    /// Lists the connection, whose descriptor is `fd`, as waiting for its next request
    /// while the worker's flushes are long, so that they stop when the request comes
    /// in (see `stream::readers`); `None` otherwise. The task must then wait for
    /// readiness before it reads.
    pub fn reading(&self, fd: RawFd) -> Option<Reading> {
        self.readers.busy().then(|| self.readers.reading(fd))
    }

    /// Gives the connection `timeout` to deliver its next request, head and body.
    pub fn deadline(&self, timeout: Duration) {
        self.worker
            .borrow_mut()
            .set_request_deadline(self.key, timeout);
    }

    /// The task is about to wait on writing an answer: the write timeout bounds it.
    pub fn answering(&self) {
        self.worker.borrow_mut().set_answer_deadline(self.key);
    }

    /// Whether the connection's deadline passed (its read or write was interrupted).
    pub fn timed_out(&self) -> bool {
        self.worker
            .borrow()
            .conns
            .get(self.key as usize)
            .is_some_and(|c| c.has(flags::TIMED_OUT))
    }

    /// Hands the connection, whose descriptor is `fd`, to the data plane as a
    /// subscriber, with its TLS session if it has one. `Some` when part of the replay
    /// must come from the cluster.
    pub fn subscribe(
        &self,
        fd: RawFd,
        request: &Subscribe,
        tls: Option<Box<Session>>,
    ) -> Option<RemoteResume> {
        let mut w = self.worker.borrow_mut();
        debug_assert_eq!(
            fd, w.conns[self.key as usize].fd,
            "slab entry and stream disagree"
        );
        w.subscribe(self.key, request, tls)
    }

    /// Delivers what the cluster fetched for a subscriber's resume.
    pub fn resume(
        &self,
        request: &Subscribe,
        pending: &RemoteResume,
        fetched: Result<Fetched, String>,
    ) {
        self.worker
            .borrow_mut()
            .resume_from_cluster(self.key, request, pending, fetched);
    }

    /// Frees the slab entry; the caller drops the stream (and so closes the descriptor)
    /// only after this, so the wheel never acts on a descriptor number reused since.
    pub fn release(self, reason: CloseReason) {
        self.stats().closes[reason.index()].add(1);
        self.worker.borrow_mut().release(self.key);
    }
}
