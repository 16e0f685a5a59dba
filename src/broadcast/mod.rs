//! From a publish to every subscriber's queue: encode once ([`frame`]), take an id and
//! record history in order ([`sequencer`], [`history`]), hand to each worker
//! ([`inbox`]), and know which local connections follow which topic ([`hub`]). The
//! fan-out itself (queueing frames on connections) is the data plane's: `stream::delivery`.

pub mod flags;
pub mod frame;
pub mod history;
pub mod hub;
pub mod inbox;
pub mod sequencer;
