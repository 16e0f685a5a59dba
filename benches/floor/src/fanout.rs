//! Per-worker fan-out: every frame from the inbox, one `write_all` per subscriber of
//! its topic.
//!
//! The worker's drain task owns all its subscriber streams. It takes every frame the
//! inbox holds, groups them by topic (in id order within a topic), and writes each
//! subscriber its topic's frames one after another, all subscribers at once; then it
//! waits for them all. This was measured against a task per subscriber parked on a
//! per-worker signal (each woken task writing the frame itself): the same CPU per
//! delivery within the noise, slightly less in most paired runs, and no task or future
//! held per idle subscriber, so this one stayed (figures in benches/peers/README.md).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;

use crate::{Frame, Shared};

/// A worker's subscribers by topic: streams whose head has been answered.
#[derive(Default)]
pub struct Subscribers {
    /// Each topic's list is taken by the drain task while it writes to it; newcomers
    /// land in a fresh list meanwhile.
    topics: RefCell<HashMap<Bytes, Vec<TcpStream>>>,
}

impl Subscribers {
    pub fn add(&self, topic: Bytes, stream: TcpStream) {
        self.topics
            .borrow_mut()
            .entry(topic)
            .or_default()
            .push(stream);
    }

    /// Writes each topic's frames, in order, to each of its subscribers, all
    /// subscribers at once; drops the streams whose write failed (the peer went away).
    async fn write_batch(&self, batch: Vec<(Bytes, Vec<Bytes>)>) {
        let mut taken: Vec<(Bytes, Vec<TcpStream>, Vec<Bytes>)> = {
            let mut topics = self.topics.borrow_mut();
            batch
                .into_iter()
                .filter_map(|(topic, frames)| {
                    let streams = std::mem::take(topics.get_mut(&topic)?);
                    Some((topic, streams, frames))
                })
                .collect()
        };
        let mut writes: FuturesUnordered<_> = taken
            .iter_mut()
            .enumerate()
            .flat_map(|(slot, (_, streams, frames))| {
                let frames = &*frames;
                streams
                    .iter_mut()
                    .enumerate()
                    .map(move |(index, stream)| async move {
                        for frame in frames {
                            if stream.write_all(frame.clone()).await.0.is_err() {
                                return Some((slot, index));
                            }
                        }
                        None
                    })
            })
            .collect();
        let mut failed = Vec::new();
        while let Some(result) = writes.next().await {
            failed.extend(result);
        }
        drop(writes);
        failed.sort_unstable();
        for &(slot, index) in failed.iter().rev() {
            taken[slot].1.swap_remove(index);
        }
        let mut topics = self.topics.borrow_mut();
        for (topic, mut streams, _) in taken {
            let list = topics.entry(topic).or_default();
            streams.append(list);
            *list = streams;
        }
    }
}

/// The worker's drain task: waits for frames and writes each to every subscriber of
/// its topic.
pub async fn drain_inbox(shared: Arc<Shared>, index: usize, subscribers: Rc<Subscribers>) {
    let inbox = &shared.inboxes[index];
    loop {
        inbox.ready().await;
        let mut batch: Vec<(Bytes, Vec<Bytes>)> = Vec::new();
        let mut slots: HashMap<Bytes, usize> = HashMap::new();
        while let Some(Frame { topic, bytes }) = inbox.frames.pop() {
            match slots.get(&topic) {
                Some(&slot) => batch[slot].1.push(bytes),
                None => {
                    slots.insert(topic.clone(), batch.len());
                    batch.push((topic, vec![bytes]));
                }
            }
        }
        subscribers.write_batch(batch).await;
    }
}
