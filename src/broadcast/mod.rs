//! From a publish to every subscriber's queue: encode once ([`frame`]), take an id and
//! record history in order ([`sequencer`], [`history`]), hand to each worker
//! ([`inbox`]), and fan out to local subscribers ([`hub`], [`fanout`]).

pub mod fanout;
pub mod frame;
pub mod history;
pub mod hub;
pub mod inbox;
pub mod sequencer;
