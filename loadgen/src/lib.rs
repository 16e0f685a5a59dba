//! ringcast-loadgen: the load generator that sizes a ringcast deployment and compares
//! SSE servers on one host.
//!
//! The data flow of a run, and the module that owns each arrow:
//!
//! ```text
//!  cli ──► plan ──► run (parent) ──► spawn worker processes (child, protocol)
//!                     │                   │
//!                     │                   └─► worker (one monoio runtime per thread)
//!                     │                          └─► subscriber::connect ──► subscriber::stream
//!                     │                                (response, sse, payload) ──► subscriber::track ──► stats, hist
//!                     ├─► publisher: request ──► window ──► conn ──► answer
//!                     │     (templates from plan, payload with seq + send time)
//!                     ├─► probe (own thread: health, subscribe, publish on new connections)
//!                     ├─► procfs (server RSS and CPU between phases)
//!                     └─► report (merge, checks) ──► table, --json
//! ```
//!
//! Every socket, subscriber, publisher or probe, is a [`tls::Stream`]: plain TCP, or
//! TCP under TLS for an `https://` endpoint.
//!
//! In the order a run passes through them:
//! - [`cli`]: flags, presets, validation; builds the [`plan::Plan`] ([`units`] parses values).
//! - [`plan`]: every parameter of a run, request templates.
//! - [`run`]: the parent: worker processes, phases, `/proc` readings.
//! - [`protocol`]: the JSON lines between parent and workers.
//! - [`child`]: a worker process: threads, commands, results.
//! - [`control`]: phase and progress shared between a worker's threads.
//! - [`worker`]: one runtime thread: connector and control task.
//! - [`subscriber`]: connect, stream, per-subscriber bookkeeping.
//! - [`tls`]: `https://`: the client config (`--ca`, `--insecure`) and the stream every
//!   connection kind holds, plain or under TLS.
//! - [`response`], [`sse`], [`payload`]: parsing what the server sends.
//! - [`publisher`]: the event source: single or NDJSON batch requests, pipelined per
//!   connection, each answer matched to its request in order.
//! - [`probe`]: the admission prober: how long a new client waits while the run loads
//!   the server.
//! - [`stats`], [`hist`]: counters and HDR histograms, merged exactly.
//! - [`procfs`], [`sys`]: the host; all `unsafe` lives in [`sys`].
//! - [`report`], [`checks`], [`table`], [`progress`]: what the user sees.

pub mod checks;
pub mod child;
pub mod cli;
pub mod control;
pub mod hist;
pub mod payload;
pub mod plan;
pub mod probe;
pub mod procfs;
pub mod progress;
pub mod protocol;
pub mod publisher;
pub mod report;
pub mod response;
pub mod run;
pub mod sse;
pub mod stats;
pub mod subscriber;
pub mod sys;
pub mod table;
pub mod tls;
pub mod units;
pub mod worker;

/// The outcome of parsing possibly incomplete input: "need more bytes" is a status,
/// not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<T> {
    Complete(T),
    Partial,
}
