//! What ends a worker loop's park, in one future: published events in the inbox, the
//! data plane's completions, a kick from one of the worker's connection tasks, or the
//! next deadline.
//!
//! The data plane's descriptor (the private io_uring, or the legacy plane's epoll) is
//! readable while completions wait in it, so one readiness poll on monoio's own driver
//! covers every subscriber write and peer close. A loop that left work over yields by
//! making that descriptor readable itself ([`crate::stream::plane::Plane::nudge`]; on the
//! legacy driver through a timer).
//!
//! A turn that left work over is followed by monoio's I/O pass (its submission of new
//! operations and its reaping of completions, between two rounds of tasks) before the
//! next turn, whatever wakes the loop meanwhile: accepts, request reads and publishers
//! on this worker then wait for at most one turn, never for a chain of them. Measured
//! under 1 KiB fan-out to 19,000 subscribers, with monoio patched to log its passes:
//! when a park that found work at once woke itself, or when any wake could end the
//! yield (a publisher task on this worker pushing to the inbox, a kick), one pass came
//! every 25-70 ms of back-to-back turns, and a request head already in the socket
//! (`FIONREAD` 119 bytes at accept) waited 284 ms for its read to be submitted.
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

/// Where the plane cannot be nudged (monoio's legacy driver checks an epoll
/// descriptor's readiness inline, without a pass), a busy loop yields through a timer
/// this long: timers are served only after the runtime has parked, that is after its
/// I/O pass. (A task that wakes itself runs again in the same round: 13-111 passes a
/// second under saturation, and new connections waited seconds.) One millisecond is the
/// timer's resolution.
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
    /// A source became ready: the loop has something to do.
    work: bool,
    /// The last turn left work over: the next turn waits for monoio's next I/O pass.
    busy: bool,
    /// The plane's readiness reaches the loop only through monoio's I/O pass (io_uring).
    /// monoio's legacy driver checks readiness inline, so there only the timer does.
    readiness_is_a_pass: bool,
    sleep: Pin<Box<monoio::time::Sleep>>,
}

impl Events {
    /// `plane` is a descriptor that reads readable while the data plane holds completions
    /// (a duplicate: the plane keeps its own); `uring` says whether monoio runs on
    /// io_uring.
    pub fn new(inbox: Arc<Inbox>, plane: OwnedFd, uring: bool) -> io::Result<Events> {
        // monoio awaits readiness only on its own socket types; a UnixStream's poll works
        // for any pollable descriptor, and this one is never read or written.
        let std = std::os::unix::net::UnixStream::from(plane);
        let plane = Rc::new(monoio::net::UnixStream::from_std(std)?);
        Ok(Events {
            inbox,
            kick: Rc::new(Kick::new()),
            plane,
            ready: None,
            work: false,
            busy: false,
            readiness_is_a_pass: uring,
            sleep: Box::pin(monoio::time::sleep(FAR)),
        })
    }

    pub fn kick(&self) -> Rc<Kick> {
        self.kick.clone()
    }

    /// Waits until one of the sources has something for the loop. After a turn that
    /// left work over, it waits for monoio's next I/O pass, whatever woke it: a wake
    /// from a task in the same round (a publisher on this worker, a connection's kick)
    /// would otherwise chain turns with no pass between them, and the worker's accepts
    /// and reads would wait for as long as publishing went on (seen: no accept for
    /// seconds under 1 KiB fan-out; 25-70 ms between passes, and up to 300 ms for a
    /// request head already in the socket, with a yield that any wake could end).
    pub async fn park(&mut self) {
        poll_fn(|cx| self.poll_sources(cx)).await
    }

    /// Step 7 of the loop: whether the turn left work over (`left`), whether it made
    /// the plane's descriptor readable (`nudged`, see [`crate::stream::plane::Plane::nudge`]),
    /// and when the loop must run even if nothing wakes it. A turn that left work and
    /// could not nudge yields through a [`YIELD`] timer.
    pub fn after_turn(&mut self, left: bool, nudged: bool, deadline: Option<Instant>) {
        self.busy = left;
        let mut at = deadline.unwrap_or_else(|| Instant::now() + FAR);
        if left && !(nudged && self.readiness_is_a_pass) {
            at = at.min(Instant::now() + YIELD);
        }
        self.kick.sleeping_until.set(at);
        self.sleep
            .as_mut()
            .reset(monoio::time::Instant::from_std(at));
    }

    /// Whether a connection task asked for a turn during this one: that is work left
    /// over too. (Events published during the turn are in the inbox's queue, which the
    /// loop checks itself.)
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
        // Taken flags survive until the turn runs.
        self.work |= asked | io | due;
        if self.busy {
            // Only monoio's I/O pass delivers the readiness (on io_uring) and the timer.
            if !(due || (io && self.readiness_is_a_pass)) {
                return Poll::Pending;
            }
        } else if !self.work {
            // Idle. The inbox's flag is taken only now: left set while the loop is busy,
            // it spares publishers on other threads a cross-thread wake (monoio's eventfd)
            // per publish, which a busy loop does not need. The turn drains the queue
            // whether or not the flag was taken.
            self.work = self.inbox.take_notified();
            if !self.work {
                return Poll::Pending;
            }
        }
        self.work = false;
        self.busy = false;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>> {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("a runtime")
    }

    /// A stand-in for the data plane's descriptor: never readable here.
    fn plane() -> (OwnedFd, std::os::unix::net::UnixStream) {
        let (ours, other) = std::os::unix::net::UnixStream::pair().expect("a socket pair");
        (OwnedFd::from(ours), other)
    }

    #[test]
    fn after_a_busy_turn_only_a_pass_of_the_runtime_ends_the_park() {
        runtime().block_on(async {
            let inbox = Arc::new(Inbox::default());
            let (fd, _other) = plane();
            let mut events = Events::new(inbox.clone(), fd, false).expect("events");
            let waker = Waker::noop();
            let mut cx = Context::from_waker(waker);

            // The turn left work: a kick and a publish in the same round do not end the
            // park (they used to, and turns then ran back to back with no I/O pass).
            events.after_turn(true, false, None);
            assert!(events.poll_sources(&mut cx).is_pending());
            events.kick().now();
            inbox.notify();
            assert!(
                events.poll_sources(&mut cx).is_pending(),
                "woken in the same round"
            );
            // The yield timer, served only after the runtime parked, does.
            monoio::time::sleep(YIELD * 3).await;
            assert!(
                events.poll_sources(&mut cx).is_ready(),
                "after the runtime's pass"
            );

            // An idle loop ends its park on any source, at once. (First the publish's
            // flag, left set while the loop was busy, is taken: one turn for it.)
            events.after_turn(false, false, None);
            assert!(events.poll_sources(&mut cx).is_ready(), "the flag left set");
            events.after_turn(false, false, None);
            assert!(events.poll_sources(&mut cx).is_pending());
            events.kick().now();
            assert!(
                events.poll_sources(&mut cx).is_ready(),
                "a kick wakes an idle loop"
            );
            events.after_turn(false, false, None);
            inbox.notify();
            assert!(
                events.poll_sources(&mut cx).is_ready(),
                "a publish wakes an idle loop"
            );
        });
    }
}
