//! TLS records once the handshake is over: sealing what ringcast sends and opening what a
//! client sends, with the traffic keys rustls hands over (see [`super::session`]).
//!
//! Three AEADs (AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305) in two record formats:
//! - TLS 1.3 (RFC 8446 §5.2): every record is `application_data` on the wire; the real
//!   content type is the last byte of the sealed plaintext; the nonce is the IV XOR the
//!   sequence number; the additional data is the record header.
//! - TLS 1.2 (RFC 5246 §6.2.3.3, RFC 5288, RFC 7905): the content type is in the header;
//!   the additional data is sequence number, type, version and plaintext length; GCM sends
//!   8 bytes of explicit nonce ahead of the ciphertext (ours: the 4-byte salt then the
//!   IV's last 8 bytes XOR the sequence number, as rustls does), ChaCha20 sends none.
//!
//! Keys are kept as bytes and expanded at each record: a subscriber that is idle holds
//! 56 bytes per direction rather than about 500 of expanded AES and GHASH tables.

use std::ops::Range;

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use rustls::ConnectionTrafficSecrets;

/// The most plaintext one record carries (2^14 bytes).
pub const MAX_PLAINTEXT: usize = 16 << 10;
/// A record header: type, version, length.
pub const HEADER: usize = 5;
/// The AEAD tag every sealed record ends with.
const TAG: usize = 16;
/// What a sealed record adds to its plaintext at most (TLS 1.2 GCM's explicit nonce is
/// the larger of the two formats' extras: 8 bytes against TLS 1.3's one content type).
pub const OVERHEAD: usize = HEADER + 8 + TAG;
/// The longest record a peer may send: 2^14 plaintext plus 256 of expansion (RFC 8446
/// §5.2; RFC 5246 allows 2048 of expansion for TLS 1.2, which no AEAD suite needs).
pub const MAX_RECORD: usize = HEADER + MAX_PLAINTEXT + 256;

/// Record content types (RFC 8446 §5.1).
pub mod content {
    pub const CHANGE_CIPHER_SPEC: u8 = 20;
    pub const ALERT: u8 = 21;
    pub const HANDSHAKE: u8 = 22;
    pub const APPLICATION_DATA: u8 = 23;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Tls12,
    Tls13,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cipher {
    Aes128Gcm,
    Aes256Gcm,
    Chacha20Poly1305,
}

/// Why a record could not be opened (each closes the connection, reason `tls`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// Longer than any record may be.
    Overflow,
    /// The tag did not verify: wrong keys, a forged or damaged record, or one missed.
    BadRecord,
    /// A TLS 1.3 record whose header type is not `application_data`, or whose plaintext
    /// is all padding.
    Malformed,
}

/// One direction's keys: all that sealing or opening its records needs.
pub struct Keys {
    cipher: Cipher,
    key: [u8; 32],
    iv: [u8; 12],
    /// The next record's sequence number.
    pub seq: u64,
}

impl Keys {
    /// From what rustls extracted: `None` for an AEAD this module does not seal.
    pub fn new(seq: u64, secrets: &ConnectionTrafficSecrets) -> Option<Keys> {
        let (cipher, key, iv) = match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (Cipher::Aes128Gcm, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (Cipher::Aes256Gcm, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                (Cipher::Chacha20Poly1305, key, iv)
            }
            _ => return None,
        };
        let mut keys = Keys {
            cipher,
            key: [0; 32],
            iv: iv.as_ref().try_into().ok()?,
            seq,
        };
        let key = key.as_ref();
        keys.key.get_mut(..key.len())?.copy_from_slice(key);
        Some(keys)
    }

    /// The same AEAD with a new key and IV, from sequence number 0 (a KeyUpdate).
    pub(super) fn renewed(&self, key: &[u8], iv: [u8; 12]) -> Keys {
        let mut keys = Keys {
            cipher: self.cipher,
            key: [0; 32],
            iv,
            seq: 0,
        };
        keys.key[..key.len()].copy_from_slice(key);
        keys
    }

    pub(super) fn key_len(&self) -> usize {
        match self.cipher {
            Cipher::Aes128Gcm => 16,
            Cipher::Aes256Gcm | Cipher::Chacha20Poly1305 => 32,
        }
    }

    fn aead(&self) -> LessSafeKey {
        let algorithm = match self.cipher {
            Cipher::Aes128Gcm => &aead::AES_128_GCM,
            Cipher::Aes256Gcm => &aead::AES_256_GCM,
            Cipher::Chacha20Poly1305 => &aead::CHACHA20_POLY1305,
        };
        let key = UnboundKey::new(algorithm, &self.key[..self.key_len()])
            .expect("key length matches its algorithm");
        LessSafeKey::new(key)
    }

    /// The IV with the sequence number XORed into its last 8 bytes.
    fn nonce(&self, seq: u64) -> [u8; 12] {
        let mut nonce = self.iv;
        for (n, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
            *n ^= s;
        }
        nonce
    }

    /// Records these keys may still seal or open before their AEAD's confidentiality
    /// limit; past it the keys must change (TLS 1.3) or the connection end (TLS 1.2).
    /// The limits are rustls's own for the same suites: 2^23 records for AES-GCM (the
    /// lower of its two, from RFC 8446 §5.5), none that matters for ChaCha20.
    pub fn exhausted(&self) -> bool {
        const AES_GCM_LIMIT: u64 = 1 << 23;
        self.cipher != Cipher::Chacha20Poly1305 && self.seq >= AES_GCM_LIMIT
    }

    /// Appends one record of content type `typ` carrying `plaintext` (the pieces in
    /// order, at most [`MAX_PLAINTEXT`] bytes together) to `out`, and advances the
    /// sequence number.
    pub fn seal<'a>(
        &mut self,
        version: Version,
        typ: u8,
        plaintext: impl IntoIterator<Item = &'a [u8]>,
        out: &mut impl Sink,
    ) {
        let (seq, start) = (self.seq, out.written());
        self.seq += 1;
        let nonce = self.nonce(seq);
        let outer = match version {
            Version::Tls13 => content::APPLICATION_DATA,
            Version::Tls12 => typ,
        };
        out.put(&[outer, 3, 3, 0, 0]);
        let explicit = version == Version::Tls12 && self.cipher != Cipher::Chacha20Poly1305;
        if explicit {
            out.put(&nonce[4..]);
        }
        let body = out.written();
        for piece in plaintext {
            out.put(piece);
        }
        let plain_len = out.written() - body;
        debug_assert!(plain_len <= MAX_PLAINTEXT, "{plain_len}-byte record");
        let aad = match version {
            Version::Tls13 => {
                out.put(&[typ]);
                let len = (out.written() - start - HEADER + TAG) as u16;
                out.bytes_mut()[start + 3..start + 5].copy_from_slice(&len.to_be_bytes());
                let mut aad = [0u8; 13];
                aad[..HEADER].copy_from_slice(&out.bytes_mut()[start..start + HEADER]);
                (aad, HEADER)
            }
            Version::Tls12 => {
                let len = (out.written() - start - HEADER + TAG) as u16;
                out.bytes_mut()[start + 3..start + 5].copy_from_slice(&len.to_be_bytes());
                (tls12_aad(seq, typ, plain_len), 13)
            }
        };
        let tag = self
            .aead()
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad.0[..aad.1]),
                &mut out.bytes_mut()[body..],
            )
            .expect("a record within the AEAD's length limit");
        out.put(tag.as_ref());
    }

    /// Opens the whole record `record` (header included) in place, and advances the
    /// sequence number. Returns the content type and where the plaintext lies.
    pub fn open(
        &mut self,
        version: Version,
        record: &mut [u8],
    ) -> Result<(u8, Range<usize>), RecordError> {
        let seq = self.seq;
        let typ = record[0];
        let explicit = version == Version::Tls12 && self.cipher != Cipher::Chacha20Poly1305;
        let skip = HEADER + if explicit { 8 } else { 0 };
        if record.len() < skip + TAG {
            return Err(RecordError::BadRecord);
        }
        let plain_len = record.len() - skip - TAG;
        let (nonce, aad) = match version {
            Version::Tls13 => {
                if typ != content::APPLICATION_DATA {
                    return Err(RecordError::Malformed);
                }
                let mut aad = [0u8; 13];
                aad[..HEADER].copy_from_slice(&record[..HEADER]);
                (self.nonce(seq), (aad, HEADER))
            }
            Version::Tls12 if explicit => {
                let mut nonce = self.iv;
                nonce[4..].copy_from_slice(&record[HEADER..HEADER + 8]);
                (nonce, (tls12_aad(seq, typ, plain_len), 13))
            }
            Version::Tls12 => (self.nonce(seq), (tls12_aad(seq, typ, plain_len), 13)),
        };
        let opened = self
            .aead()
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad.0[..aad.1]),
                &mut record[skip..],
            )
            .map_err(|_| RecordError::BadRecord)?;
        self.seq += 1;
        let len = opened.len();
        match version {
            Version::Tls12 => Ok((typ, skip..skip + len)),
            Version::Tls13 => {
                // The inner plaintext: content, then its type, then zero padding.
                let inner = opened.iter().rposition(|&b| b != 0);
                let at = inner.ok_or(RecordError::Malformed)?;
                Ok((opened[at], skip..skip + at))
            }
        }
    }
}

fn tls12_aad(seq: u64, typ: u8, len: usize) -> [u8; 13] {
    let mut aad = [0u8; 13];
    aad[..8].copy_from_slice(&seq.to_be_bytes());
    aad[8..11].copy_from_slice(&[typ, 3, 3]);
    aad[11..].copy_from_slice(&(len as u16).to_be_bytes());
    aad
}

/// The length of the record at the start of `buf` when all of it is there, `Ok(None)`
/// when more bytes must come first.
pub fn complete(buf: &[u8]) -> Result<Option<usize>, RecordError> {
    if buf.len() < HEADER {
        return Ok(None);
    }
    let len = HEADER + usize::from(u16::from_be_bytes([buf[3], buf[4]]));
    if len > MAX_RECORD {
        return Err(RecordError::Overflow);
    }
    Ok((buf.len() >= len).then_some(len))
}

/// Where records are sealed: a `Vec` for a connection's answers, the worker's shared
/// `BytesMut` for its subscribers' writes.
pub trait Sink {
    /// Bytes in the sink so far.
    fn written(&self) -> usize;
    fn put(&mut self, bytes: &[u8]);
    fn bytes_mut(&mut self) -> &mut [u8];
}

impl Sink for Vec<u8> {
    fn written(&self) -> usize {
        Vec::len(self)
    }
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        self
    }
}

impl Sink for bytes::BytesMut {
    fn written(&self) -> usize {
        bytes::BytesMut::len(self)
    }
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(kind: u8) -> Keys {
        let cipher = [
            Cipher::Aes128Gcm,
            Cipher::Aes256Gcm,
            Cipher::Chacha20Poly1305,
        ][kind as usize];
        Keys {
            cipher,
            key: [kind + 1; 32],
            iv: [7; 12],
            seq: 5,
        }
    }

    #[test]
    fn records_open_to_what_was_sealed_in_both_versions_and_every_cipher() {
        for version in [Version::Tls12, Version::Tls13] {
            for kind in 0..3 {
                let (mut tx, mut rx) = (keys(kind), keys(kind));
                let mut out = Vec::new();
                tx.seal(
                    version,
                    content::APPLICATION_DATA,
                    [&b"ab"[..], b"cde"],
                    &mut out,
                );
                tx.seal(version, content::ALERT, [&[1u8, 0][..]], &mut out);
                assert_eq!(tx.seq, 7);
                let first = complete(&out).unwrap().expect("whole record");
                let (typ, range) = rx.open(version, &mut out[..first]).unwrap();
                assert_eq!(
                    (typ, &out[range]),
                    (content::APPLICATION_DATA, &b"abcde"[..])
                );
                let rest = &mut out[first..];
                assert_eq!(complete(rest).unwrap(), Some(rest.len()));
                let (typ, range) = rx.open(version, rest).unwrap();
                assert_eq!((typ, &rest[range]), (content::ALERT, &[1u8, 0][..]));
                // TLS 1.3 hides the type in the ciphertext.
                let outer = if version == Version::Tls13 { 23 } else { 21 };
                assert_eq!(rest[0], outer, "{version:?}");
            }
        }
    }

    #[test]
    fn a_damaged_or_replayed_record_does_not_open() {
        let (mut tx, mut rx) = (keys(0), keys(0));
        let mut out = Vec::new();
        tx.seal(
            Version::Tls13,
            content::APPLICATION_DATA,
            [&b"x"[..]],
            &mut out,
        );
        let mut damaged = out.clone();
        *damaged.last_mut().unwrap() ^= 1;
        assert_eq!(
            rx.open(Version::Tls13, &mut damaged),
            Err(RecordError::BadRecord)
        );
        let mut copy = out.clone();
        rx.open(Version::Tls13, &mut out).unwrap();
        // The same record again: the sequence number moved on, so the nonce differs.
        assert_eq!(
            rx.open(Version::Tls13, &mut copy),
            Err(RecordError::BadRecord)
        );
    }

    #[test]
    fn lengths_are_checked_before_a_record_is_whole() {
        assert_eq!(complete(&[23, 3, 3]), Ok(None));
        assert_eq!(complete(&[23, 3, 3, 0, 2, 9]), Ok(None));
        assert_eq!(complete(&[23, 3, 3, 0, 1, 9]), Ok(Some(6)));
        assert_eq!(
            complete(&[23, 3, 3, 0xff, 0xff]),
            Err(RecordError::Overflow)
        );
    }
}
