//! Per-worker fan-out: every frame from the inbox, one `write_all` per subscriber.
//!
//! The worker's drain task owns all its subscriber streams and, for each frame,
//! issues one write per stream, all in flight at once, then waits for them all.
//! This was measured against a task per subscriber parked on a per-worker signal
//! (each woken task writing the frame itself): the same CPU per delivery within the
//! noise, slightly less in most paired runs, and no task or future held per idle
//! subscriber, so this one stayed (figures in benches/peers/README.md).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;

use crate::Shared;

/// A worker's subscribers: streams whose head has been answered.
#[derive(Default)]
pub struct Subscribers {
    /// Taken by the drain task for each round; newcomers land here meanwhile.
    streams: RefCell<Vec<TcpStream>>,
}

impl Subscribers {
    pub fn add(&self, stream: TcpStream) {
        self.streams.borrow_mut().push(stream);
    }

    /// One write of `frame` per stream, all in flight at once; drops the streams
    /// whose write failed (the peer went away).
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
        let mut newcomers = self.streams.borrow_mut();
        streams.append(&mut newcomers);
        *newcomers = streams;
    }
}

/// The worker's drain task: waits for frames and writes each to every subscriber.
pub async fn drain_inbox(shared: Arc<Shared>, index: usize, subscribers: Rc<Subscribers>) {
    let inbox = &shared.inboxes[index];
    loop {
        inbox.ready().await;
        while let Some(frame) = inbox.frames.pop() {
            subscribers.write_round(frame).await;
        }
    }
}
