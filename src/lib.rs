//! ringcast: a Server-Sent Events server on a thread-per-core io_uring runtime.
//!
//! The data flow, and the module that owns each arrow:
//!
//! ```text
//!  accept ──► (tls::handshake) ──► conn::handshake ──► http::parse ──► route
//!                                                   │
//!     GET /events ──► conn::subscribe ──► broadcast::history (replay) ──► broadcast::hub
//!                                                                              │
//!     POST /publish ─► conn::publish ──► broadcast::frame (encode once)        │
//!                        ──► broadcast::sequencer (id + history + inboxes)     │
//!                        ──► broadcast::inbox ──► stream::delivery (fan-out) ──┤
//!                                                                              ▼
//!                                              stream (coalesced writes on the worker's ring)
//!
//!  worker: one loop per thread; worker::events is the one future that ends its park
//!
//!  timer::wheel: heartbeats, handshake timeouts, slow-reader and lifetime eviction
//!
//!     GET / ──► page (the live page's assets)        worker 0 ──► page::stats ──► sequencer
//!
//!  cluster mode: conn::publish ──► cluster (XADD) ──► Redis stream ──► cluster (XREAD)
//!                                  ──► broadcast::sequencer ──► inboxes, as above
//! ```
//!
//! In request order:
//! - [`config`]: every tunable, built once in `main.rs` and passed down.
//! - [`sys`]: the few raw system calls (rlimits, socket options).
//! - [`server`]: starts one worker per core, handles signals and the shutdown drain;
//!   [`shared`]: what the workers share, and the publish back-pressure.
//! - [`accept`]: one SO_REUSEPORT listener per worker (two with `--plain-listen`); the
//!   connection limit.
//! - [`tls`]: the handshake with rustls on the connection's task, then a session of keys
//!   and sequence numbers that seals frames at write time and opens what clients send.
//! - [`http`]: the hand-rolled request-head parser, body decoding, responses.
//! - [`conn`]: a connection's slab entry, the handshake, routing, and the two endpoints;
//!   [`topic`]: the topic grammar they share; [`json`]: the JSON written by hand.
//! - [`auth`] and [`cors`]: who may subscribe and publish (JWT, publish token), and
//!   which browser origins may; [`forward_auth`]: the same asked of an HTTP auth server
//!   (`--auth-url`) from the handshake, over a per-worker pool of connections.
//! - [`broadcast`]: frames, ids, history, cross-worker inboxes, per-worker topic hub.
//! - [`stream`]: the subscriber data plane (`stream::Writes`: the kernel interface on
//!   io_uring or epoll, the dirty list, writes in flight, completions) and the fan-out
//!   with its per-subscriber bound (`stream::delivery`).
//! - [`timer`]: a worker's timers (`timer::Timers`: the wheel and its clock); what a
//!   connection's timer means is `conn::lifecycle`.
//! - [`worker`]: the per-worker event loop that ties the stages together, each stage's
//!   state its own field; its wake sources in `worker::events`; `worker::Port`, the one
//!   handle a connection task has on its worker.
//! - [`census`]: subscribers per topic, process-wide, for `GET /topics`.
//! - [`cluster`]: scale-out through one Redis stream shared by many processes.
//! - [`page`]: the live page at `GET /`, and the `sys:stats` stream that feeds it.
//! - [`metrics`] and [`logging`]: counters for `/metrics`, structured logs.
//!
//! `unsafe` is denied everywhere but in three homes, each allowing it for itself: [`sys`]
//! (system calls), the data plane's kernel interface (`stream::plane`, `stream::ring`,
//! `stream::epoll`: submissions that point the kernel at frames), and `http::cursor`
//! (16-byte SSE2 scans).

#![deny(unsafe_code)]

pub mod accept;
pub mod auth;
pub mod broadcast;
pub mod census;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod cors;
pub mod forward_auth;
pub mod http;
pub mod json;
pub mod logging;
pub mod metrics;
pub mod page;
pub mod server;
pub mod shared;
pub mod stream;
pub mod sys;
pub mod timer;
pub mod tls;
pub mod topic;
pub mod worker;
