//! Per-worker fan-out: every frame from the inbox, one `write_all` per subscriber.
//!
//! Two ways to issue the writes, measured against each other (see README):
//! - `Tasks`: each subscriber is a task parked on a per-worker signal; a frame
//!   wakes them all and each writes it.
//! - `Batch`: the worker's drain task owns all subscriber streams and issues one
//!   write per stream concurrently, then waits for them all.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Poll, Waker};

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;

use crate::Shared;

/// Frames a task-mode subscriber may still catch up on; older ones it skips.
const KEPT_FRAMES: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Tasks,
    Batch,
}

pub struct Subscribers {
    mode: Mode,
    /// Batch mode: the subscriber streams, taken by the drain task for each round.
    streams: RefCell<Vec<TcpStream>>,
    /// Task mode: the latest frames; `frames[0]` has sequence number `first_seq`.
    frames: RefCell<VecDeque<Bytes>>,
    first_seq: Cell<u64>,
    /// Task mode: subscribers parked until the next frame.
    waiters: RefCell<Vec<Waker>>,
}

impl Subscribers {
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            streams: RefCell::default(),
            frames: RefCell::default(),
            first_seq: Cell::new(0),
            waiters: RefCell::default(),
        }
    }

    /// Takes over a subscriber whose head has been answered.
    pub async fn add(&self, stream: TcpStream) {
        match self.mode {
            Mode::Batch => self.streams.borrow_mut().push(stream),
            Mode::Tasks => self.follow(stream).await,
        }
    }

    /// Task mode: writes every new frame to `stream` until a write fails.
    async fn follow(&self, mut stream: TcpStream) {
        let mut next = self.end_seq();
        loop {
            std::future::poll_fn(|cx| {
                if self.end_seq() > next {
                    Poll::Ready(())
                } else {
                    self.waiters.borrow_mut().push(cx.waker().clone());
                    Poll::Pending
                }
            })
            .await;
            loop {
                // Frames may have been dropped from the front while we wrote.
                next = next.max(self.first_seq.get());
                if next >= self.end_seq() {
                    break;
                }
                let frame = self.frames.borrow()[(next - self.first_seq.get()) as usize].clone();
                next += 1;
                if stream.write_all(frame).await.0.is_err() {
                    return;
                }
            }
        }
    }

    fn end_seq(&self) -> u64 {
        self.first_seq.get() + self.frames.borrow().len() as u64
    }

    /// Task mode: keeps the frame and wakes every parked subscriber.
    fn signal(&self, frame: Bytes) {
        let mut frames = self.frames.borrow_mut();
        if frames.len() == KEPT_FRAMES {
            frames.pop_front();
            self.first_seq.set(self.first_seq.get() + 1);
        }
        frames.push_back(frame);
        drop(frames);
        for waker in self.waiters.take() {
            waker.wake();
        }
    }

    /// Batch mode: one write of `frame` per stream, all in flight at once.
    async fn write_round(&self, frame: Bytes) {
        let mut streams = self.streams.take();
        let mut writes: FuturesUnordered<_> = streams
            .iter_mut()
            .enumerate()
            .map(|(index, stream)| {
                let frame = frame.clone();
                async move { (index, stream.write_all(frame).await.0.is_ok()) }
            })
            .collect();
        let mut failed = Vec::new();
        while let Some((index, ok)) = writes.next().await {
            if !ok {
                failed.push(index);
            }
        }
        drop(writes);
        failed.sort_unstable();
        for index in failed.into_iter().rev() {
            streams.swap_remove(index);
        }
        // Subscribers that arrived during the round were pushed to the emptied vec.
        let mut streams_now = self.streams.borrow_mut();
        streams.append(&mut streams_now);
        *streams_now = streams;
    }
}

/// The worker's drain task: waits for frames and fans each one out.
pub async fn drain_inbox(shared: Arc<Shared>, index: usize, subscribers: std::rc::Rc<Subscribers>) {
    let inbox = &shared.inboxes[index];
    loop {
        inbox.ready().await;
        while let Some(frame) = inbox.frames.pop() {
            match subscribers.mode {
                Mode::Batch => subscribers.write_round(frame).await,
                Mode::Tasks => subscribers.signal(frame),
            }
        }
    }
}
