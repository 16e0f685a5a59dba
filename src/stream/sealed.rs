//! TLS subscribers in the data plane. A TLS stream queues the same plaintext frames as
//! any other; its session (`tls::session::Session`, by slab key in [`Writes`]) seals
//! what is queued when a write starts, into the worker's scratch memory, and opens what
//! the client sends when the close-watch fires.

use crate::conn::{flags, CloseReason, Conn, Phase};
use crate::stream::plane::{Completion, Op, Token};
use crate::stream::Writes;
use crate::sys;
use crate::tls::session::Session;

/// What a TLS subscriber's watch reads at once, at most: its records are alerts and key
/// updates, a few dozen bytes (more is chatter, limited by the watch's `MAX_DISCARD`).
const TLS_READ: usize = 16 << 10;
/// The completion result that stands for a TLS session that cannot seal (its keys are
/// spent, or rustls refused the next ones): the write "fails", and the connection closes
/// with reason `tls`.
pub(super) const SEAL_FAILED: i32 = -libc::EPROTO;

impl Writes {
    /// Takes over a TLS subscriber's session; its frames are sealed from now on.
    pub fn adopt(&mut self, conn: &mut Conn, key: u32, session: Box<Session>) {
        conn.set(flags::TLS);
        self.tls.insert(key, session);
    }

    /// Seals what `conn` has queued (or keeps what was sealed and not yet taken) and
    /// starts sending it; false when there is nothing to send. A session that cannot
    /// seal gets a failed write ([`SEAL_FAILED`]), which closes it.
    pub(super) fn start_sealed(&mut self, conn: &mut Conn, token: Token) -> bool {
        let Some(session) = self.tls.get_mut(&token.key) else {
            return false;
        };
        let last = conn.phase() == Phase::Draining;
        match session.seal_queued(&mut conn.out, last, &mut self.scratch) {
            Ok(()) if session.sealed().is_empty() => return false,
            Ok(()) => self.plane.send(token, conn.fd, session.sealed()),
            Err(e) => {
                log::debug!(key = token.key, error:? = e; "a TLS subscriber cannot seal");
                self.collected.writes.push(Completion {
                    token,
                    op: Op::Write,
                    res: SEAL_FAILED,
                });
            }
        }
        true
    }

    /// The kernel took `n` of a TLS subscriber's sealed bytes: whether more waits.
    pub(super) fn wrote_sealed(&mut self, key: u32, n: usize) -> bool {
        self.tls.get_mut(&key).is_some_and(|s| s.wrote(n))
    }

    /// Reads and opens what a TLS subscriber sent: a close_notify or end of stream closes
    /// it (`peer`), a key update is applied (and answered, when asked for, by its next
    /// write, started now), a record that does not open closes it (`tls`). Returns the
    /// application data bytes it sent, which count as chatter.
    pub(super) fn hear(&mut self, conn: &mut Conn, key: u32) -> Result<usize, CloseReason> {
        let Some(session) = self.tls.get_mut(&key) else {
            return Err(CloseReason::Error);
        };
        let mut raw = session.take_unread();
        let mut ended = false;
        while raw.len() < TLS_READ {
            raw.reserve(TLS_READ - raw.len());
            match sys::recv_now(conn.fd, &mut raw) {
                Some(0) => {
                    ended = true;
                    break;
                }
                Some(_) => {}
                None => break,
            }
        }
        self.heard.clear();
        let heard = session.receive(&mut raw, &mut self.heard).map_err(|e| {
            log::debug!(key = key, error:? = e; "a TLS subscriber sent what does not open");
            CloseReason::Tls
        })?;
        session.keep_unread(raw);
        if heard.closed || ended {
            return Err(CloseReason::Peer);
        }
        if session.wants_write() && conn.flags & (flags::WRITING | flags::BLOCKED) == 0 {
            self.dirty.mark_prompt(conn, key);
        }
        Ok(heard.data)
    }
}
