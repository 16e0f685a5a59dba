//! Subscription events (`--subscription-events`): when a subscriber starts or stops
//! following topic `T`, the server publishes `event: join` or `event: leave` with
//! `{"topic","user","connection","at"}` on `sys:subscriptions/T`, and the census keeps
//! the users following each topic for `GET /topics/T/subscribers`.
//!
//! A worker collects the turn's joins and leaves and publishes them as one batch at the
//! turn's end: one sequencer lock for a burst of thousands (in cluster mode, one Redis
//! transaction, sent from a task so the loop never waits on Redis). The server's own
//! topics (`sys:…`) make no events, so watching presence makes none of its own.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustc_hash::FxHashMap;
use smallvec::smallvec;

use super::Worker;
use crate::broadcast::frame::Draft;
use crate::broadcast::sequencer::NewEvent;
use crate::cluster::WireEvent;
use crate::json::json_escape;

/// The topic that carries topic `T`'s subscription events is this prefix plus `T`.
pub const PREFIX: &str = "sys:subscriptions/";

#[derive(Default)]
pub struct Presence {
    /// The user of each local stream that named one (by connection key), for its
    /// leave events and the census.
    users: FxHashMap<u32, Arc<str>>,
    /// This turn's events, in order: the topic (`sys:subscriptions/T`), name, data.
    pending: Vec<(String, &'static str, String)>,
}

/// A connection's name in events: this process, worker and connection generation.
fn connection(worker: usize, gen: u32) -> String {
    static PROCESS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let process = PROCESS.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        format!("{:x}{:05x}", std::process::id(), nanos & 0xf_ffff)
    });
    format!("{process}-{worker}-{gen}")
}

fn event_data(topic: &str, user: Option<&str>, connection: &str) -> String {
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut out = String::with_capacity(96 + topic.len());
    out.push_str("{\"topic\":\"");
    json_escape(topic, &mut out);
    out.push_str("\",\"user\":");
    match user {
        Some(user) => {
            out.push('"');
            json_escape(user, &mut out);
            out.push('"');
        }
        None => out.push_str("null"),
    }
    out.push_str(",\"connection\":\"");
    out.push_str(connection);
    out.push_str("\",\"at\":");
    out.push_str(itoa::Buffer::new().format(at));
    out.push('}');
    out
}

impl Worker {
    /// Stream `key` began following `topics` as `user`.
    pub(super) fn joined(&mut self, key: u32, topics: &[&str], user: Option<&str>) {
        let Some(presence) = self.presence.as_mut() else {
            return;
        };
        let user: Option<Arc<str>> = user.map(Arc::from);
        if let Some(user) = &user {
            presence.users.insert(key, user.clone());
            self.shared
                .census
                .add_user(self.index, topics.iter().copied(), user, 1);
        }
        let conn = connection(self.index, self.conns[key as usize].gen);
        for topic in topics.iter().filter(|t| !t.starts_with("sys:")) {
            let data = event_data(topic, user.as_deref(), &conn);
            presence
                .pending
                .push((format!("{PREFIX}{topic}"), "join", data));
        }
    }

    /// Stream `key`, following `topics`, has closed.
    pub(super) fn left(&mut self, key: u32, topics: &[Arc<str>]) {
        let Some(presence) = self.presence.as_mut() else {
            return;
        };
        let user = presence.users.remove(&key);
        if let Some(user) = &user {
            let names = topics.iter().map(|t| &**t);
            self.shared.census.add_user(self.index, names, user, -1);
        }
        let conn = connection(self.index, self.conns[key as usize].gen);
        for topic in topics.iter().filter(|t| !t.starts_with("sys:")) {
            let data = event_data(topic, user.as_deref(), &conn);
            presence
                .pending
                .push((format!("{PREFIX}{topic}"), "leave", data));
        }
    }

    /// Step 5½: publishes the turn's subscription events as one batch.
    pub(super) fn publish_presence(&mut self) {
        let Some(presence) = self.presence.as_mut() else {
            return;
        };
        if presence.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut presence.pending);
        let count = pending.len() as u64;
        match self.shared.cluster.clone() {
            None => {
                let events = pending
                    .iter()
                    .map(|(topic, name, data)| NewEvent {
                        topics: smallvec![topic.as_str()],
                        draft: Draft::new(Some(name.as_bytes()), data.as_bytes()),
                    })
                    .collect();
                self.shared.sequencer.publish(events);
            }
            Some(cluster) => {
                let events: Vec<WireEvent> = pending
                    .into_iter()
                    .map(|(topic, name, data)| WireEvent {
                        topics: vec![topic],
                        event: Some(name.to_string()),
                        data,
                    })
                    .collect();
                monoio::spawn(async move {
                    if let Err(why) = cluster.publish(events).await {
                        log::warn!(events = count, why:% = why; "subscription events lost");
                    }
                });
            }
        }
        self.stats().subscription_events.add(count);
    }
}
