//! What ends a worker loop's park, in one future: published events in the inbox, the
//! data plane's completions, a kick from one of the worker's connection tasks, or the
//! next deadline.
//!
//! The data plane's descriptor (the private io_uring, or the legacy plane's epoll) is
//! readable while completions wait in it, so one readiness poll on monoio's own driver
//! covers every subscriber write and peer close. A loop that left work over yields by
//! making that descriptor readable itself ([`crate::stream::plane::Plane::nudge`]; on the
//! legacy driver by [`Events::again`]).
//!
//! Every park returns to the runtime, and the runtime then parks in the kernel, before
//! the next turn: a park whose sources are ready at once (events published during the
//! turn) waits for the nudged descriptor or for a one-millisecond timer, never for a
//! wake of its own. Accepts, handshakes and publishers on this worker therefore run
//! between any two turns, and their io_uring operations complete: measured on this
//! machine's 6.18 kernel, an accept armed on monoio's ring was completed only when
//! monoio parked in `io_uring_enter` to wait for completions. A loop that woke itself
//! kept monoio running tasks and submitting without ever waiting, and a new connection
//! sat in the listener's accept queue for up to 370 ms of back-to-back turns.
//!
//! Why not an eventfd rung by the ring and watched by a second task: that bridge needs a
//! flag handshake between two tasks, and it lost wake-ups (a loop that yielded while the
//! watcher still waited for the loop to take the previous ring slept until its next
//! timer: 13 s for a browser reconnecting to an idle server; see BENCHMARKS.md).

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::broadcast::inbox::Inbox;

/// How far ahead a loop with nothing to wait for sets its sleep (it wakes for nothing).
const FAR: Duration = Duration::from_secs(3600);

/// A park whose sources were ready at once sleeps this long at most (it ends sooner
/// when the nudged plane descriptor or another source wakes it). A timer is served only
/// after the runtime has parked, that is after its I/O pass, while a task that wakes
/// itself runs again in the same round of the runtime (on the legacy driver up to three
/// turns before its next epoll pass: 13-111 passes a second under saturation; on
/// io_uring, see the module notes). One millisecond is the timer's resolution.
const YIELD: Duration = Duration::from_millis(1);

/// The handle a worker's connection tasks use to ask its loop for a turn.
pub struct Kick {
    asked: Cell<bool>,
    /// Until when the parked loop sleeps if nothing else wakes it.
    sleeping_until: Cell<Instant>,
    waker: RefCell<Option<Waker>>,
}

impl Kick {
    fn new() -> Kick {
        Kick {
            asked: Cell::new(false),
            sleeping_until: Cell::new(Instant::now() + FAR),
            waker: RefCell::new(None),
        }
    }

    /// Asks for a turn as soon as the loop can take one (new work was queued for it).
    pub fn now(&self) {
        if !self.asked.replace(true) {
            if let Some(w) = self.waker.borrow().as_ref() {
                w.wake_by_ref();
            }
        }
    }

    /// Asks for a turn at `at` if the loop would otherwise sleep past it (a connection
    /// task armed a timer earlier than every other one).
    pub fn before(&self, at: Instant) {
        if at < self.sleeping_until.get() {
            self.now();
        }
    }
}

type Readiness = Pin<Box<dyn Future<Output = io::Result<()>>>>;

/// The loop's wake sources.
pub struct Events {
    inbox: Arc<Inbox>,
    kick: Rc<Kick>,
    /// The data plane's descriptor under monoio's readiness poll.
    plane: Rc<monoio::net::UnixStream>,
    /// The pending readiness poll; armed while the loop is parked, kept across parks.
    ready: Option<Readiness>,
    /// The loop asked to run again ([`Events::again`]).
    again: bool,
    /// The current park has returned to the runtime at least once.
    yielded: bool,
    sleep: Pin<Box<monoio::time::Sleep>>,
}

impl Events {
    /// `plane` is a descriptor that reads readable while the data plane holds completions
    /// (a duplicate: the plane keeps its own).
    pub fn new(inbox: Arc<Inbox>, plane: OwnedFd) -> io::Result<Events> {
        // monoio awaits readiness only on its own socket types; a UnixStream's poll works
        // for any pollable descriptor, and this one is never read or written.
        let std = std::os::unix::net::UnixStream::from(plane);
        let plane = Rc::new(monoio::net::UnixStream::from_std(std)?);
        Ok(Events {
            inbox,
            kick: Rc::new(Kick::new()),
            plane,
            ready: None,
            again: false,
            yielded: false,
            sleep: Box::pin(monoio::time::sleep(FAR)),
        })
    }

    pub fn kick(&self) -> Rc<Kick> {
        self.kick.clone()
    }

    /// Waits until one of the sources has something for the loop, and always returns
    /// to the runtime first: a source that is ready at once (events published during
    /// the turn, completions of its writes) would otherwise chain turns without a pass
    /// of monoio's in between, and the worker's accepts and handshakes would wait for as
    /// long as publishing went on (seen: no accept for seconds under 1 KiB fan-out).
    pub async fn park(&mut self) {
        self.yielded = false;
        poll_fn(|cx| self.poll_sources(cx)).await
    }

    /// The loop has work left and no descriptor to nudge: the next park ends after its
    /// one return to the runtime.
    pub fn again(&mut self) {
        self.again = true;
    }

    /// Whether a connection task asked for a turn during this one, so the next park will
    /// end at once: the loop then makes sure it yields first. (Events published during
    /// the turn are in the inbox's queue, which the loop checks itself.)
    pub fn kicked(&self) -> bool {
        self.kick.asked.get()
    }

    fn poll_sources(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        // Every source registers before it is checked, so a wake between the two is kept.
        {
            let mut waker = self.kick.waker.borrow_mut();
            if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *waker = Some(cx.waker().clone());
            }
        }
        self.inbox.register(cx.waker());
        let asked = self.kick.asked.replace(false);
        let io = self.poll_plane(cx);
        let due = self.sleep.as_mut().poll(cx).is_ready();
        // `again` and a ready source survive the yield: flags were taken, so keep them.
        self.again |= asked | io | due;
        // The inbox's flag is taken only when nothing else is about to run the loop. Left
        // set, it keeps publishers on other threads from waking this one: monoio does
        // not wait in the kernel while a wake from another thread is pending, and under
        // publishing as fast as answered one came every turn (see the module notes).
        // The turn drains the queue whether or not the flag was taken.
        if !self.again {
            self.again = self.inbox.take_notified();
        }
        if !self.again {
            self.yielded = true;
            return Poll::Pending;
        }
        if !self.yielded {
            // Ready at once: come back after the runtime's other tasks and after it has
            // parked, woken by the nudged plane or by the timer, not by ourselves.
            self.yielded = true;
            let soon = monoio::time::Instant::now() + YIELD;
            self.sleep.as_mut().reset(soon);
            if self.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.again = false;
        Poll::Ready(())
    }

    fn poll_plane(&mut self, cx: &mut Context<'_>) -> bool {
        let ready = self.ready.get_or_insert_with(|| {
            let plane = self.plane.clone();
            Box::pin(async move { plane.readable(false).await })
        });
        match ready.as_mut().poll(cx) {
            Poll::Pending => false,
            Poll::Ready(result) => {
                self.ready = None;
                if let Err(e) = result {
                    // Never seen; the loop's timer still runs it, and the next park re-arms.
                    log::warn!(error:% = e; "data plane readiness poll failed");
                }
                true
            }
        }
    }

    /// Sets when the next park ends by itself: `at`, or never if `None`.
    pub fn set_deadline(&mut self, at: Option<Instant>) {
        let at = at.unwrap_or_else(|| Instant::now() + FAR);
        self.kick.sleeping_until.set(at);
        self.sleep
            .as_mut()
            .reset(monoio::time::Instant::from_std(at));
    }
}
