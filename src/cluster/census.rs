//! Subscriber counts summed over every process of the cluster, for `GET /topics`.
//!
//! Each process reports its own counts to Redis about once a second: a hash of topic to
//! count under `<stream>:census:<process>`, which expires unless reported again, and the
//! process's name in the sorted set `<stream>:census` scored with the report's time
//! (Redis's clock, so hosts need not agree on theirs). A query sums the hashes of the
//! processes that reported within the expiry, plus this process's own counts read live.
//! A process that dies stops reporting, and its share is gone within `SHARE_TTL`.
//!
//! The thread has its own connection: a query never waits behind a publish or a stream
//! read, and the report never delays either.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{Connection, RedisResult};

use super::entry::connect;
use super::{Settings, Stats};
use crate::census::Census;

/// How often this process reports its counts.
const REPORT_EVERY: Duration = Duration::from_secs(1);
/// How long a report counts: a process silent for longer is taken for dead.
const SHARE_TTL_MS: u64 = 5_000;
/// Hash entries asked for per `HSCAN` step of a listing.
const SCAN_COUNT: usize = 1_000;

pub(super) enum Query {
    Count {
        topic: String,
        reply: flume::Sender<Result<u64, String>>,
    },
    List {
        prefix: String,
        after: Option<String>,
        limit: usize,
        reply: flume::Sender<Result<Vec<(String, u64)>, String>>,
    },
    Users {
        topic: String,
        after: Option<String>,
        limit: usize,
        reply: flume::Sender<Result<Vec<(String, u64)>, String>>,
    },
}

pub(super) struct Reporter {
    client: redis::Client,
    stats: Arc<Stats>,
    census: Arc<Census>,
    /// The sorted set of reporting processes, and this process's name in it.
    set: String,
    me: String,
    con: Option<Connection>,
    /// The counts and users last written, to write them again only when they changed.
    written: Option<BTreeMap<Arc<str>, u64>>,
    written_users: Option<BTreeMap<String, u64>>,
}

impl Reporter {
    pub fn new(
        client: redis::Client,
        settings: &Settings,
        stats: Arc<Stats>,
        census: Arc<Census>,
    ) -> Reporter {
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Reporter {
            client,
            stats,
            census,
            set: format!("{}:census", settings.stream),
            me: format!("{}-{nonce:x}", std::process::id()),
            con: None,
            written: None,
            written_users: None,
        }
    }

    /// Reports and answers queries until the process ends.
    pub fn serve(mut self, queries: flume::Receiver<Query>) {
        let mut next = Instant::now();
        loop {
            let wait = next.saturating_duration_since(Instant::now());
            match queries.recv_timeout(wait) {
                Ok(Query::Count { topic, reply }) => {
                    let local = self.census.count(&topic);
                    let _ = reply.send(self.with(|r, con| r.count(con, &topic)).map(|n| n + local));
                }
                Ok(Query::List {
                    prefix,
                    after,
                    limit,
                    reply,
                }) => {
                    let answer = self.with(|r, con| r.list(con, &prefix, after.as_deref(), limit));
                    let _ = reply.send(answer);
                }
                Ok(Query::Users {
                    topic,
                    after,
                    limit,
                    reply,
                }) => {
                    let answer = self.with(|r, con| r.users(con, &topic, after.as_deref(), limit));
                    let _ = reply.send(answer);
                }
                Err(flume::RecvTimeoutError::Timeout) => {
                    if self.with(|r, con| r.report(con)).is_err() {
                        self.written = None;
                        self.written_users = None;
                    }
                    next = Instant::now() + REPORT_EVERY;
                }
                Err(flume::RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn with<T>(
        &mut self,
        f: impl FnOnce(&mut Self, &mut Connection) -> RedisResult<T>,
    ) -> Result<T, String> {
        let mut con = match self.con.take() {
            Some(con) => con,
            None => connect(&self.client).map_err(|e| self.failed(e))?,
        };
        let result = f(self, &mut con).map_err(|e| self.failed(e));
        if result.is_ok() {
            self.con = Some(con);
        }
        result
    }

    fn failed(&self, e: redis::RedisError) -> String {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        log::debug!(error:% = e; "redis census request failed");
        format!("Redis unavailable: {e}")
    }

    fn hash_of(&self, process: &str) -> String {
        format!("{}:{process}", self.set)
    }

    /// Writes this process's counts (only if they changed) and renews its share.
    fn report(&mut self, con: &mut Connection) -> RedisResult<()> {
        let now = redis_ms(con)?;
        let counts = self.census.snapshot();
        let hash = self.hash_of(&self.me);
        let mut pipe = redis::pipe();
        pipe.atomic();
        if self.written.as_ref() != Some(&counts) {
            pipe.cmd("DEL").arg(&hash).ignore();
            if !counts.is_empty() {
                let cmd = pipe.cmd("HSET").arg(&hash);
                for (topic, n) in &counts {
                    cmd.arg(&**topic).arg(*n);
                }
                cmd.ignore();
            }
        }
        pipe.cmd("PEXPIRE").arg(&hash).arg(SHARE_TTL_MS).ignore();
        let users = self.census.users_snapshot();
        let users_hash = format!("{hash}:users");
        if self.written_users.as_ref() != Some(&users) {
            pipe.cmd("DEL").arg(&users_hash).ignore();
            if !users.is_empty() {
                let cmd = pipe.cmd("HSET").arg(&users_hash);
                for (field, n) in &users {
                    cmd.arg(field).arg(*n);
                }
                cmd.ignore();
            }
        }
        pipe.cmd("PEXPIRE")
            .arg(&users_hash)
            .arg(SHARE_TTL_MS)
            .ignore();
        pipe.cmd("ZADD")
            .arg(&self.set)
            .arg(now)
            .arg(&self.me)
            .ignore();
        pipe.cmd("ZREMRANGEBYSCORE")
            .arg(&self.set)
            .arg("-inf")
            .arg(format!("({}", now.saturating_sub(SHARE_TTL_MS)))
            .ignore();
        pipe.cmd("PEXPIRE")
            .arg(&self.set)
            .arg(SHARE_TTL_MS * 4)
            .ignore();
        pipe.query::<()>(con)?;
        self.written = Some(counts);
        self.written_users = Some(users);
        Ok(())
    }

    /// The other processes that reported within the expiry.
    fn others(&self, con: &mut Connection) -> RedisResult<Vec<String>> {
        let now = redis_ms(con)?;
        let live: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(&self.set)
            .arg(now.saturating_sub(SHARE_TTL_MS))
            .arg("+inf")
            .query(con)?;
        Ok(live.into_iter().filter(|p| *p != self.me).collect())
    }

    fn count(&self, con: &mut Connection, topic: &str) -> RedisResult<u64> {
        let others = self.others(con)?;
        if others.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        for p in &others {
            pipe.cmd("HGET").arg(self.hash_of(p)).arg(topic);
        }
        let counts: Vec<Option<u64>> = pipe.query(con)?;
        Ok(counts.into_iter().flatten().sum())
    }

    fn list(
        &self,
        con: &mut Connection,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> RedisResult<Vec<(String, u64)>> {
        let local = self.census.list(prefix, after, limit);
        let local = local.into_iter().map(|(t, n)| (t.to_string(), n));
        let hashes = self.others(con)?.iter().map(|p| self.hash_of(p)).collect();
        // Topic names have no glob characters (`topic::valid_topic`), nor do prefixes.
        let scan = Scan {
            hashes,
            pattern: format!("{prefix}*"),
            limit,
        };
        let merged = scan.merge(con, local, |field| {
            let wanted = field.starts_with(prefix) && after.is_none_or(|a| field > a);
            wanted.then(|| field.to_string())
        })?;
        Ok(merged.into_iter().collect())
    }

    /// The users following `topic` on every live process, paged by name.
    fn users(
        &self,
        con: &mut Connection,
        topic: &str,
        after: Option<&str>,
        limit: usize,
    ) -> RedisResult<Vec<(String, u64)>> {
        let local = self.census.users(topic, after, limit);
        let local = local.into_iter().map(|(u, n)| (u.to_string(), n));
        let others = self.others(con)?;
        let field_prefix = format!("{topic}\n");
        let scan = Scan {
            hashes: others
                .iter()
                .map(|p| format!("{}:users", self.hash_of(p)))
                .collect(),
            pattern: format!("{}*", glob_escape(&field_prefix)),
            limit,
        };
        let merged = scan.merge(con, local, |field| {
            let user = field.strip_prefix(field_prefix.as_str())?;
            after.is_none_or(|a| user > a).then(|| user.to_string())
        })?;
        Ok(merged.into_iter().collect())
    }
}

/// A walk over other processes' hashes (`HSCAN … MATCH pattern`), keeping the first
/// `limit` names.
struct Scan {
    hashes: Vec<String>,
    pattern: String,
    limit: usize,
}

impl Scan {
    /// Adds to `local` the fields that `keep` names, summing their counts.
    fn merge(
        self,
        con: &mut Connection,
        local: impl Iterator<Item = (String, u64)>,
        keep: impl Fn(&str) -> Option<String>,
    ) -> RedisResult<BTreeMap<String, u64>> {
        let mut merged: BTreeMap<String, u64> = local.collect();
        for hash in &self.hashes {
            let mut cursor = 0u64;
            loop {
                let (next, pairs): (u64, Vec<(String, u64)>) = redis::cmd("HSCAN")
                    .arg(hash)
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&self.pattern)
                    .arg("COUNT")
                    .arg(SCAN_COUNT)
                    .query(con)?;
                for (field, n) in pairs {
                    if let Some(name) = keep(&field) {
                        *merged.entry(name).or_default() += n;
                    }
                }
                // Keep memory bounded: only the first `limit` names can be answered.
                while merged.len() > self.limit {
                    merged.pop_last();
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(merged)
    }
}

/// `s` with Redis glob characters escaped, for a `MATCH` pattern.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Redis's clock in milliseconds (`TIME`), the one clock every process agrees on.
fn redis_ms(con: &mut Connection) -> RedisResult<u64> {
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query(con)?;
    Ok(secs * 1000 + micros / 1000)
}
