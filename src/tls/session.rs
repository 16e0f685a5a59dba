//! A TLS connection after its handshake, reduced to what sealing and opening its
//! records needs: the traffic keys and sequence numbers of each direction, and (TLS 1.3)
//! the traffic secrets that make the next keys when either side updates its keys
//! ([`super::secret`]). Nothing of rustls is kept: its connection object, with its
//! buffers and its key-update state, is dropped at the end of the handshake; an idle
//! subscriber holds only this (see [`Session`]'s fields).

use bytes::{Bytes, BytesMut};
use rustls::{ExtractedSecrets, ProtocolVersion};
use smallvec::SmallVec;

use super::record::{self, content, Keys, RecordError, Sink, Version, MAX_PLAINTEXT, OVERHEAD};
pub use super::secret::TrafficSecret;
use crate::stream::out::Out;

/// Plaintext sealed for one write at most: enough that a subscriber catching up sends
/// large writes, little enough that the worker's scratch memory stays small. What the
/// kernel does not take waits, already sealed, for the next write. Measured at 1 KiB
/// saturation over TLS (19,000 subscribers, two runs each): 16 KiB cost 0.84-1.02
/// CPU-s per million deliveries and 256 KiB 1.03-1.12, against 0.61-0.74 at 64 KiB.
const SEAL_BYTES: usize = 64 << 10;
/// The worker's scratch for sealed writes is renewed at this size when what is left of
/// it cannot hold the next write (the writes in flight keep the old one alive).
const SCRATCH_BYTES: usize = 256 << 10;

/// Handshake message types after the handshake (RFC 8446 §4).
const KEY_UPDATE: u8 = 24;
/// Alert descriptions (RFC 8446 §6).
const CLOSE_NOTIFY: u8 = 0;
const USER_CANCELED: u8 = 90;

/// Why a TLS connection is closed as a protocol error (close reason `tls`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsError {
    Record(RecordError),
    /// The peer sent this fatal alert.
    Alert(u8),
    /// A record or message that has no place after the handshake (a TLS 1.2
    /// renegotiation, a change_cipher_spec, a handshake message other than KeyUpdate).
    Unexpected,
    /// rustls refused to compute the next keys, or the negotiated AEAD is not one this
    /// server seals.
    Keys,
    /// TLS 1.2 keys reached their AEAD's limit; TLS 1.2 cannot change them.
    Exhausted,
}

impl From<RecordError> for TlsError {
    fn from(e: RecordError) -> TlsError {
        TlsError::Record(e)
    }
}

/// What opening a peer's records found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Heard {
    /// Application data bytes appended to the caller's buffer.
    pub data: usize,
    /// The peer sent close_notify: it will send nothing more.
    pub closed: bool,
}

/// A streaming or request-phase TLS connection's record state.
///
/// An idle subscriber's session is 272 bytes, boxed: `tx` and `rx` (56 bytes each), the
/// TLS 1.3 traffic secret of each direction (49 bytes each; they make the next keys at a
/// KeyUpdate), an empty `partial` and an empty `sealed` (no allocation), and three flags.
/// Nothing of rustls is kept.
pub struct Session {
    version: Version,
    /// Sends a KeyUpdate before the next record: the peer asked for one, or `tx` neared
    /// its AEAD's limit.
    update_tx: bool,
    /// A close_notify has been sealed: nothing may follow it.
    notified: bool,
    tx: Keys,
    rx: Keys,
    /// TLS 1.3: the secrets `tx` and `rx` came from (unused on TLS 1.2, which cannot
    /// change its keys).
    tx_secret: TrafficSecret,
    rx_secret: TrafficSecret,
    /// The start of a record the peer has sent only in part (a subscriber sends nothing
    /// but alerts and key updates, so this is nearly always empty and unallocated).
    partial: Vec<u8>,
    /// Sealed bytes being written; what the kernel has not yet taken of them is sent
    /// before anything else is sealed. Empty (no allocation) between writes.
    sealed: Bytes,
}

impl Session {
    /// From what rustls extracted at the end of the handshake, and (TLS 1.3) the traffic
    /// secrets it logged on the way, the server's first.
    pub fn new(
        protocol: ProtocolVersion,
        secrets: ExtractedSecrets,
        traffic: Option<(TrafficSecret, TrafficSecret)>,
    ) -> Result<Session, TlsError> {
        let version = match protocol {
            ProtocolVersion::TLSv1_3 => Version::Tls13,
            _ => Version::Tls12,
        };
        let (tx_secret, rx_secret) = match (version, traffic) {
            (Version::Tls13, Some(pair)) => pair,
            (Version::Tls13, None) => return Err(TlsError::Keys),
            (Version::Tls12, _) => (TrafficSecret::default(), TrafficSecret::default()),
        };
        let (tx_seq, tx) = secrets.tx;
        let (rx_seq, rx) = secrets.rx;
        Ok(Session {
            version,
            update_tx: false,
            notified: false,
            tx: Keys::new(tx_seq, &tx).ok_or(TlsError::Keys)?,
            rx: Keys::new(rx_seq, &rx).ok_or(TlsError::Keys)?,
            tx_secret,
            rx_secret,
            partial: Vec::new(),
            sealed: Bytes::new(),
        })
    }

    /// The sealed bytes the next write sends (empty: nothing to send).
    pub fn sealed(&self) -> &Bytes {
        &self.sealed
    }

    /// Takes the start of a record the peer has sent only in part, to add what arrived
    /// since and [`Session::receive`] it; give back what is left with
    /// [`Session::keep_unread`].
    pub fn take_unread(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.partial)
    }

    /// Keeps bytes of a record not yet whole, in a buffer of their own size; none at all
    /// when there are none, so that an idle session holds no buffer.
    pub fn keep_unread(&mut self, mut raw: Vec<u8>) {
        self.partial = match raw.is_empty() {
            true => Vec::new(),
            false => {
                raw.shrink_to_fit();
                raw
            }
        };
    }

    /// Whether something must be sealed and sent even with no frame queued (a KeyUpdate
    /// the peer asked for), or sealed bytes wait for the kernel.
    pub fn wants_write(&self) -> bool {
        (self.update_tx && !self.notified) || !self.sealed.is_empty()
    }

    /// The kernel took `n` of the sealed bytes; whether anything is left to write (the
    /// rest of them, or a KeyUpdate due). The bytes let go of their buffer once all are
    /// written.
    ///
    /// What is left moves to an allocation of its own: a slice of the worker's scratch
    /// would keep the whole scratch buffer (256 KiB) alive for as long as this reader
    /// takes, and a thousand readers that stopped would hold a thousand of them.
    pub fn wrote(&mut self, n: usize) -> bool {
        self.sealed = unwritten(std::mem::take(&mut self.sealed), n);
        self.wants_write()
    }

    /// Opens every whole record at the front of `raw`, removes them, and appends their
    /// application data to `data`. Alerts, key updates and errors are handled here; an
    /// incomplete record stays in `raw`.
    pub fn receive(&mut self, raw: &mut Vec<u8>, data: &mut Vec<u8>) -> Result<Heard, TlsError> {
        let mut heard = Heard::default();
        let mut at = 0;
        let result = loop {
            let Some(len) = record::complete(&raw[at..])? else {
                break Ok(heard);
            };
            let rec = &mut raw[at..at + len];
            at += len;
            let (typ, range) = self.rx.open(self.version, rec)?;
            let body = &rec[range];
            match typ {
                content::APPLICATION_DATA => {
                    data.extend_from_slice(body);
                    heard.data += body.len();
                }
                content::ALERT => match body {
                    [_, CLOSE_NOTIFY] => {
                        heard.closed = true;
                        break Ok(heard);
                    }
                    [_, USER_CANCELED] => {}
                    [_, description] => break Err(TlsError::Alert(*description)),
                    _ => break Err(TlsError::Unexpected),
                },
                content::HANDSHAKE if self.version == Version::Tls13 => {
                    if let Err(e) = self.handshake_messages(body) {
                        break Err(e);
                    }
                }
                _ => break Err(TlsError::Unexpected),
            }
            if self.rx.exhausted() {
                // A peer must update its keys before this; one that does not is broken.
                break Err(TlsError::Exhausted);
            }
        };
        raw.drain(..at);
        result
    }

    /// TLS 1.3 post-handshake messages from a client: only KeyUpdate has a place (we ask
    /// for no certificate, and tickets go the other way).
    fn handshake_messages(&mut self, mut body: &[u8]) -> Result<(), TlsError> {
        while !body.is_empty() {
            let [typ, a, b, c, ref rest @ ..] = *body else {
                return Err(TlsError::Unexpected);
            };
            let len = u32::from_be_bytes([0, a, b, c]) as usize;
            if typ != KEY_UPDATE || len != 1 || rest.is_empty() {
                return Err(TlsError::Unexpected);
            }
            self.rx = self.rx_secret.next(&self.rx).ok_or(TlsError::Keys)?;
            match rest[0] {
                0 => {}
                1 => self.update_tx = true,
                _ => return Err(TlsError::Unexpected),
            }
            body = &rest[1..];
        }
        Ok(())
    }

    /// Seals a KeyUpdate with the current keys and moves to the next ones, when one is
    /// due (asked for by the peer, or the keys near their limit; TLS 1.2 cannot, and its
    /// connection must end instead).
    fn update_keys_if_due(&mut self, out: &mut impl Sink) -> Result<(), TlsError> {
        if self.tx.exhausted() && self.version == Version::Tls12 {
            return Err(TlsError::Exhausted);
        }
        if !(self.update_tx || self.tx.exhausted()) {
            return Ok(());
        }
        let message = [KEY_UPDATE, 0, 0, 1, 0];
        self.tx
            .seal(self.version, content::HANDSHAKE, [&message[..]], out);
        self.tx = self.tx_secret.next(&self.tx).ok_or(TlsError::Keys)?;
        self.update_tx = false;
        Ok(())
    }

    /// Seals `plaintext` (a connection task's answer) into records appended to `out`.
    pub fn seal(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), TlsError> {
        out.reserve(plaintext.len() + (plaintext.len() / MAX_PLAINTEXT + 2) * OVERHEAD);
        self.update_keys_if_due(out)?;
        for chunk in plaintext.chunks(MAX_PLAINTEXT) {
            self.tx
                .seal(self.version, content::APPLICATION_DATA, [chunk], out);
        }
        Ok(())
    }

    /// Seals a close_notify alert: the last record this side sends.
    pub fn close_notify(&mut self, out: &mut impl Sink) {
        if !self.notified {
            self.notified = true;
            let alert = [1, CLOSE_NOTIFY];
            self.tx
                .seal(self.version, content::ALERT, [&alert[..]], out);
        }
    }

    /// Seals up to [`SEAL_BYTES`] of the frames queued in `out` (taking them out of it)
    /// into [`Session::sealed`], several frames to a record, in `scratch`; with `last`,
    /// a close_notify follows once nothing is left queued. Does nothing while sealed
    /// bytes wait.
    pub fn seal_queued(
        &mut self,
        out: &mut Out,
        last: bool,
        scratch: &mut BytesMut,
    ) -> Result<(), TlsError> {
        if !self.sealed.is_empty() || self.notified {
            return Ok(());
        }
        let take = out.bytes().min(SEAL_BYTES);
        let records = take.div_ceil(MAX_PLAINTEXT) + 2;
        let need = take + records * OVERHEAD;
        if scratch.capacity() < need {
            *scratch = BytesMut::with_capacity(need.max(SCRATCH_BYTES));
        }
        self.update_keys_if_due(scratch)?;
        self.seal_frames(out, take, scratch);
        out.consume(take);
        if last && out.is_empty() {
            self.close_notify(scratch);
        }
        self.sealed = scratch.split().freeze();
        Ok(())
    }

    /// Seals the first `take` bytes of `out`'s frames, in records of up to
    /// [`MAX_PLAINTEXT`], each gathering as many frames as fit.
    fn seal_frames(&mut self, out: &Out, take: usize, scratch: &mut BytesMut) {
        // A record's pieces: as many frames as fit in 16 KiB (a 64-byte event frame is
        // about 150 bytes with its id and chunk framing: about a hundred).
        let mut pieces: SmallVec<[&[u8]; 128]> = SmallVec::new();
        let (mut left, mut frames) = (take, out.frames());
        let mut carry: &[u8] = &[];
        while left > 0 {
            // One record: pieces of frames up to MAX_PLAINTEXT bytes.
            pieces.clear();
            let mut room = left.min(MAX_PLAINTEXT);
            left -= room;
            while room > 0 {
                if carry.is_empty() {
                    carry = frames.next().map_or(&[], |f| &f[..]);
                    if carry.is_empty() {
                        break;
                    }
                }
                let n = room.min(carry.len());
                pieces.push(&carry[..n]);
                carry = &carry[n..];
                room -= n;
            }
            self.tx.seal(
                self.version,
                content::APPLICATION_DATA,
                pieces.iter().copied(),
                scratch,
            );
        }
    }
}

/// What is left of `sealed` once `n` of its bytes are written: empty (holding no
/// buffer) or a copy of its own, never a slice of the scratch buffer it was sealed in.
fn unwritten(mut sealed: Bytes, n: usize) -> Bytes {
    use bytes::Buf;
    sealed.advance(n.min(sealed.len()));
    match sealed.is_empty() {
        true => Bytes::new(),
        false => Bytes::copy_from_slice(&sealed),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    // Sessions come only from real handshakes; tests/tls.rs drives them with a rustls
    // client. Here: the size an idle subscriber pays.
    use super::*;

    #[test]
    fn what_a_partial_write_leaves_owns_its_bytes_and_a_whole_write_leaves_nothing() {
        let mut scratch = BytesMut::with_capacity(1 << 10);
        scratch.extend_from_slice(&[7u8; 300]);
        let sealed = scratch.split().freeze();
        let range = sealed.as_ptr_range();
        let rest = unwritten(sealed.clone(), 100);
        assert_eq!(&rest[..], &[7u8; 200][..]);
        assert!(
            !range.contains(&rest.as_ptr()),
            "the rest still points into the scratch buffer"
        );
        let none = unwritten(sealed, 300);
        assert!(none.is_empty());
        assert_eq!(
            none.as_ptr(),
            Bytes::new().as_ptr(),
            "an empty rest holds no buffer"
        );
    }

    #[test]
    fn an_idle_session_stays_small() {
        let size = std::mem::size_of::<Session>();
        assert!(size <= 288, "Session grew to {size} bytes");
    }
}
