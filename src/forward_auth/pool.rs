//! A worker's connections to the auth server: at most `max` in use at once, kept alive
//! between calls, and a FIFO of calls waiting for one when all are busy.
//!
//! A call first takes a [`Permit`] (one of `max`), then an idle connection or a new one.
//! A permit is handed straight to the next waiter when dropped, so a burst of subscribes
//! is served in arrival order by `max` connections, never by more.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::{Poll, Waker};

use monoio::net::TcpStream;

pub struct Pool {
    state: RefCell<State>,
}

struct State {
    /// Permits there are.
    max: usize,
    /// Permits held (by calls, or promised to a waiter that has not run yet).
    taken: usize,
    /// Connections kept alive between calls; never more than `max`, since only a permit
    /// holder puts one here.
    idle: Vec<TcpStream>,
    waiters: VecDeque<Rc<Waiter>>,
}

#[derive(Default)]
struct Waiter {
    /// A permit was handed to this waiter.
    granted: Cell<bool>,
    /// The waiting call was dropped (timed out): skip it.
    gone: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

/// The right to use one connection; handed on when dropped.
pub struct Permit {
    pool: Rc<Pool>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.pool.hand_over();
    }
}

/// A waiting call's place in the queue; gives a permit granted after it was dropped
/// to the next waiter instead of losing it.
struct Place {
    pool: Rc<Pool>,
    waiter: Rc<Waiter>,
    done: bool,
}

impl Drop for Place {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.waiter.gone.set(true);
        if self.waiter.granted.get() {
            self.pool.hand_over();
        }
    }
}

impl Pool {
    pub fn new(max: usize) -> Rc<Pool> {
        Rc::new(Pool {
            state: RefCell::new(State {
                max: max.max(1),
                taken: 0,
                idle: Vec::new(),
                waiters: VecDeque::new(),
            }),
        })
    }

    /// Waits for a permit (in arrival order when none is free).
    pub async fn permit(self: &Rc<Self>) -> Permit {
        let waiter = {
            let mut s = self.state.borrow_mut();
            if s.taken < s.max && s.waiters.is_empty() {
                s.taken += 1;
                return Permit { pool: self.clone() };
            }
            let waiter = Rc::new(Waiter::default());
            s.waiters.push_back(waiter.clone());
            waiter
        };
        let mut place = Place {
            pool: self.clone(),
            waiter,
            done: false,
        };
        std::future::poll_fn(|cx| {
            if place.waiter.granted.get() {
                return Poll::Ready(());
            }
            *place.waiter.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        place.done = true;
        Permit { pool: self.clone() }
    }

    /// A permit is free: to the first waiter still waiting, else back to the pool.
    fn hand_over(&self) {
        let mut s = self.state.borrow_mut();
        while let Some(w) = s.waiters.pop_front() {
            if !w.gone.get() {
                w.granted.set(true);
                if let Some(waker) = w.waker.borrow_mut().take() {
                    waker.wake();
                }
                return;
            }
        }
        debug_assert!(s.taken > 0, "a permit returned that was never taken");
        s.taken -= 1;
    }

    /// An idle connection, if one is kept (the permit says the caller may use it).
    pub fn take_idle(&self, _: &Permit) -> Option<TcpStream> {
        self.state.borrow_mut().idle.pop()
    }

    /// Keeps a connection that answered cleanly for the next call.
    pub fn put_idle(&self, stream: TcpStream, _: &Permit) {
        self.state.borrow_mut().idle.push(stream);
    }

    /// Permits held now (for tests).
    #[cfg(test)]
    fn taken(&self) -> usize {
        self.state.borrow().taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn permits_are_bounded_handed_on_in_order_and_survive_timeouts() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        rt.block_on(async {
            let pool = Pool::new(2);
            let a = pool.permit().await;
            let b = pool.permit().await;
            assert_eq!(pool.taken(), 2);
            // A waiter that gives up does not take a permit with it.
            let gave_up = monoio::time::timeout(Duration::from_millis(5), pool.permit()).await;
            assert!(gave_up.is_err());
            let order = Rc::new(RefCell::new(Vec::new()));
            let mut tasks = Vec::new();
            for i in 0..3 {
                let (pool, order) = (pool.clone(), order.clone());
                tasks.push(monoio::spawn(async move {
                    let _p = pool.permit().await;
                    order.borrow_mut().push(i);
                    monoio::time::sleep(Duration::from_millis(2)).await;
                }));
            }
            monoio::time::sleep(Duration::from_millis(5)).await;
            assert!(order.borrow().is_empty(), "all permits are held");
            drop(a);
            drop(b);
            for t in tasks {
                t.await;
            }
            assert_eq!(*order.borrow(), [0, 1, 2]);
            assert_eq!(pool.taken(), 0);
        });
    }
}
