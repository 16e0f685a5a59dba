//! TLS 1.3 traffic secrets: how a session makes its next keys at a KeyUpdate (RFC 8446
//! §7.2: `next = HKDF-Expand-Label(secret, "traffic upd", "", Hash.length)`, then the key
//! and IV from it, §7.3), and how it gets its first secrets from rustls.
//!
//! rustls hands over the first keys and sequence numbers (`ExtractedSecrets`) but not
//! the secrets they came from; its `KernelConnection` keeps those and makes the next
//! keys, at 560 bytes inline plus about 380 on the heap per connection, most of it state
//! a connection over TCP never uses. rustls does give the secrets to a `KeyLog` (the
//! NSS key log labels `CLIENT_TRAFFIC_SECRET_0` and `SERVER_TRAFFIC_SECRET_0`), from
//! inside `process_tls_records`, which runs on the handshake's own thread without
//! yielding: [`Capture`] keeps them in a thread-local slot that the handshake empties
//! right after each call, so no other handshake on the worker can come in between.

use std::cell::RefCell;

use aws_lc_rs::hkdf::{self, KeyType, Prk};
use rustls::KeyLog;

use super::record::Keys;

const CLIENT: &str = "CLIENT_TRAFFIC_SECRET_0";
const SERVER: &str = "SERVER_TRAFFIC_SECRET_0";

/// A traffic secret: 32 bytes (SHA-256 suites) or 48 (SHA-384).
#[derive(Clone)]
pub struct TrafficSecret {
    bytes: [u8; 48],
    len: u8,
}

impl Default for TrafficSecret {
    /// None: a TLS 1.2 session's, which makes no next keys.
    fn default() -> TrafficSecret {
        TrafficSecret {
            bytes: [0; 48],
            len: 0,
        }
    }
}

impl TrafficSecret {
    fn from_slice(secret: &[u8]) -> Option<TrafficSecret> {
        let mut s = TrafficSecret {
            bytes: [0; 48],
            len: u8::try_from(secret.len()).ok()?,
        };
        s.bytes.get_mut(..secret.len())?.copy_from_slice(secret);
        Some(s)
    }

    fn prk(&self) -> Option<Prk> {
        let algorithm = match self.len {
            32 => hkdf::HKDF_SHA256,
            48 => hkdf::HKDF_SHA384,
            _ => return None,
        };
        Some(Prk::new_less_safe(
            algorithm,
            &self.bytes[..self.len as usize],
        ))
    }

    /// Moves to the next secret and returns the keys it gives, for the same AEAD as
    /// `current`, from sequence number 0. `None` if this secret was never set.
    pub fn next(&mut self, current: &Keys) -> Option<Keys> {
        let len = self.len as usize;
        let mut next = [0u8; 48];
        expand_label(&self.prk()?, b"traffic upd", &mut next[..len])?;
        self.bytes = next;
        let prk = self.prk()?;
        let mut key = [0u8; 32];
        let mut iv = [0u8; 12];
        expand_label(&prk, b"key", &mut key[..current.key_len()])?;
        expand_label(&prk, b"iv", &mut iv)?;
        Some(current.renewed(&key[..current.key_len()], iv))
    }
}

/// HKDF-Expand-Label with an empty context (RFC 8446 §7.1).
fn expand_label(prk: &Prk, label: &[u8], out: &mut [u8]) -> Option<()> {
    struct Len(usize);
    impl KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let length = u16::try_from(out.len()).ok()?.to_be_bytes();
    let label_len = [u8::try_from(b"tls13 ".len() + label.len()).ok()?];
    let info: [&[u8]; 5] = [&length, &label_len, b"tls13 ", label, &[0]];
    prk.expand(&info, Len(out.len())).ok()?.fill(out).ok()
}

thread_local! {
    /// What [`Capture`] was given during the current `process_tls_records` call.
    static LOGGED: RefCell<(Option<TrafficSecret>, Option<TrafficSecret>)> =
        const { RefCell::new((None, None)) };
}

/// Takes the traffic secrets logged on this thread since the last call, if any: the
/// server's (ours to send with) and the client's.
pub fn take_logged() -> (Option<TrafficSecret>, Option<TrafficSecret>) {
    LOGGED.with(|l| {
        let (client, server) = std::mem::take(&mut *l.borrow_mut());
        (server, client)
    })
}

/// The `KeyLog` of the server's configuration: keeps the two application traffic
/// secrets of the handshake being processed on this thread, and nothing else.
#[derive(Debug)]
pub struct Capture;

impl KeyLog for Capture {
    fn log(&self, label: &str, _client_random: &[u8], secret: &[u8]) {
        LOGGED.with(|l| {
            let mut l = l.borrow_mut();
            match label {
                CLIENT => l.0 = TrafficSecret::from_slice(secret),
                SERVER => l.1 = TrafficSecret::from_slice(secret),
                _ => {}
            }
        });
    }

    fn will_log(&self, label: &str) -> bool {
        label == CLIENT || label == SERVER
    }
}
