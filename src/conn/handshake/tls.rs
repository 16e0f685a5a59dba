//! The request task on the TLS listener: the handshake (within the handshake timeout),
//! records read and opened into the request buffer, and answers sealed.

use monoio::io::AsyncWriteRentExt;

use super::{End, Http, TLS_ERROR};
use crate::conn::CloseReason;
use crate::http::response;
use crate::tls::handshake::{self as tls_handshake, Failed};
use crate::tls::record::MAX_RECORD;

impl Http {
    /// The TLS handshake, within the handshake timeout.
    pub(super) async fn handshake(&mut self) -> Result<(), End> {
        let Some(acceptor) = self.shared.tls.clone() else {
            return Err(End::Quiet(CloseReason::Error));
        };
        self.port.deadline(self.shared.config.handshake_timeout);
        match tls_handshake::accept(&mut self.stream, acceptor.config()).await {
            Ok(done) => {
                self.port.stats().tls_handshakes.add(1);
                self.tls = Some(done.session);
                self.buf = done.data;
                self.raw = done.raw;
                Ok(())
            }
            Err(Failed::Closed) if self.timed_out() => {
                Err(End::Quiet(CloseReason::HandshakeTimeout))
            }
            Err(Failed::Closed) => Err(End::Quiet(CloseReason::Peer)),
            Err(Failed::Plaintext) => {
                let status = 400;
                let why = "this port speaks TLS: use https://";
                log::debug!(peer:% = self.peer; "plaintext request on the TLS port");
                let bytes = response::refusal(status).body(
                    "text/plain; charset=utf-8",
                    response::refusal_text(status, why).as_bytes(),
                );
                Err(End::Answer(bytes, CloseReason::Plaintext))
            }
            Err(Failed::Refused(e)) => {
                log::debug!(peer:% = self.peer, error:% = e; "TLS handshake refused");
                Err(End::Quiet(CloseReason::Tls))
            }
        }
    }

    /// `bytes` as this connection sends them: sealed into records on TLS.
    pub(super) fn sealed(&mut self, bytes: Vec<u8>) -> std::io::Result<Vec<u8>> {
        let Some(session) = &mut self.tls else {
            return Ok(bytes);
        };
        let mut records = Vec::new();
        session
            .seal(&bytes, &mut records)
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        Ok(records)
    }

    /// Writes `bytes` (sealed on TLS), waiting as long as it takes: an interim answer
    /// within a request's own deadline.
    pub(super) async fn send_all(&mut self, bytes: Vec<u8>) -> std::io::Result<()> {
        let bytes = self.sealed(bytes)?;
        self.stream.write_all(bytes).await.0.map(drop)
    }

    /// On TLS: reads records until one carries data, and opens them into the buffer.
    /// 0 is the end of the stream or a close_notify.
    pub(super) async fn fill_tls(&mut self, waiting: bool) -> std::io::Result<usize> {
        loop {
            let session = self
                .tls
                .as_mut()
                .expect("fill_tls is called on TLS connections only");
            let before = self.buf.len();
            let heard = session
                .receive(&mut self.raw, &mut self.buf)
                .map_err(|e| std::io::Error::new(TLS_ERROR, format!("TLS: {e:?}")))?;
            if heard.closed {
                return Ok(0);
            }
            if self.buf.len() > before {
                return Ok(self.buf.len() - before);
            }
            let raw = std::mem::take(&mut self.raw);
            let (res, raw) = self.read_into(raw, 2 * MAX_RECORD, waiting).await;
            self.raw = raw;
            if res? == 0 {
                return Ok(0);
            }
        }
    }
}
