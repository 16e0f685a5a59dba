//! The TLS handshake, on the connection's own task: rustls's unbuffered server
//! connection driven over the socket until the handshake is done, then reduced to a
//! [`Session`]. It runs within the connection's request deadline (the handshake timeout
//! the task set), so a client that stalls halfway is closed like a slow request head.

use std::os::fd::AsRawFd;
use std::sync::Arc;

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError};
use rustls::ServerConfig;

use super::secret;
use super::session::Session;
use crate::sys;

/// A ClientHello with every extension a browser sends is 2 KB or less; the client's
/// whole handshake far less than this, which bounds what a client can make us buffer.
const MAX_HANDSHAKE_BYTES: usize = 64 << 10;
const READ_CHUNK: usize = 4 << 10;

/// A finished handshake.
pub struct Accepted {
    pub session: Box<Session>,
    /// Application data that arrived with the handshake (the start of the request).
    pub data: Vec<u8>,
    /// Bytes of records not yet opened.
    pub raw: Vec<u8>,
}

/// Why a handshake did not finish.
#[derive(Debug)]
pub enum Failed {
    /// The peer closed, or the read failed (also how a timed-out read ends: the caller
    /// tells the two apart by its deadline).
    Closed,
    /// The first bytes are not a TLS record: a plaintext request on the TLS port.
    Plaintext,
    /// rustls refused the handshake (the alert, if any, was sent).
    Refused(rustls::Error),
}

/// Runs the server side of a handshake on `stream` with `config`.
pub async fn accept(stream: &mut TcpStream, config: Arc<ServerConfig>) -> Result<Accepted, Failed> {
    let mut conn = UnbufferedServerConnection::new(config).map_err(Failed::Refused)?;
    let mut incoming: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut outgoing: Vec<u8> = vec![0; READ_CHUNK];
    let mut queued = 0;
    let mut data = Vec::new();
    let mut received = 0;
    let (mut ours, mut theirs) = (None, None);
    loop {
        let status = conn.process_tls_records(&mut incoming);
        // Before any await: the secrets rustls logged in that call are this connection's.
        let (server, client) = secret::take_logged();
        ours = server.or(ours);
        theirs = client.or(theirs);
        let mut discard = status.discard;
        let state = match status.state {
            Ok(state) => state,
            Err(e) => {
                incoming.drain(..discard);
                send_alert(stream, &mut conn, &mut incoming, &mut outgoing);
                return Err(Failed::Refused(e));
            }
        };
        let mut read_more = false;
        let mut done = false;
        match state {
            ConnectionState::ReadTraffic(mut traffic) => {
                while let Some(record) = traffic.next_record() {
                    let record = record.map_err(Failed::Refused)?;
                    discard += record.discard;
                    data.extend_from_slice(record.payload);
                }
            }
            ConnectionState::EncodeTlsData(mut encode) => loop {
                match encode.encode(&mut outgoing[queued..]) {
                    Ok(n) => queued += n,
                    Err(EncodeError::InsufficientSize(need)) => {
                        outgoing.resize(queued + need.required_size, 0);
                    }
                    Err(EncodeError::AlreadyEncoded) => break,
                }
            },
            ConnectionState::TransmitTlsData(transmit) => {
                let flight = std::mem::take(&mut outgoing);
                let (res, flight) = stream.write_all(flight.slice(..queued)).await;
                outgoing = flight.into_inner();
                res.map_err(|_| Failed::Closed)?;
                queued = 0;
                transmit.done();
            }
            ConnectionState::BlockedHandshake => read_more = true,
            // The server may send before the client's Finished (TLS 1.3's half round
            // trip); the handshake is over only once that has arrived.
            ConnectionState::WriteTraffic(_) => match conn.is_handshaking() {
                true => read_more = true,
                false => done = true,
            },
            ConnectionState::PeerClosed | ConnectionState::Closed => return Err(Failed::Closed),
            _ => {
                return Err(Failed::Refused(rustls::Error::General(
                    "unexpected handshake state".into(),
                )))
            }
        }
        incoming.drain(..discard);
        if done {
            let protocol = conn.protocol_version();
            // The kernel connection (rustls's key-update state) is dropped at once: the
            // session makes its next keys itself (`tls::secret`).
            let (secrets, _) = conn
                .dangerous_into_kernel_connection()
                .map_err(Failed::Refused)?;
            let traffic = ours.take().zip(theirs.take());
            let protocol = protocol.ok_or(Failed::Refused(rustls::Error::HandshakeNotComplete))?;
            let session = Session::new(protocol, secrets, traffic).map_err(|e| {
                Failed::Refused(rustls::Error::General(format!(
                    "after the handshake: {e:?}"
                )))
            })?;
            return Ok(Accepted {
                session: Box::new(session),
                data,
                raw: incoming,
            });
        }
        if read_more {
            if incoming.len() >= MAX_HANDSHAKE_BYTES {
                return Err(Failed::Refused(rustls::Error::General(
                    "handshake too large".into(),
                )));
            }
            incoming.reserve(READ_CHUNK);
            let len = incoming.len();
            let (res, buf) = stream.read(incoming.slice_mut(len..)).await;
            incoming = buf.into_inner();
            match res {
                Ok(0) | Err(_) => return Err(Failed::Closed),
                Ok(n) => received += n,
            }
            // A request line starts with a method's letter; any TLS connection with a
            // handshake record (22). Other garbage is rustls's to refuse.
            if received == incoming.len() && incoming[0].is_ascii_alphabetic() {
                return Err(Failed::Plaintext);
            }
        }
    }
}

/// After a refused handshake: sends the alert rustls queued, if the socket takes it at
/// once (the connection is closing anyway). rustls must see the same unread bytes
/// again: its deframer keeps offsets into them.
fn send_alert(
    stream: &TcpStream,
    conn: &mut UnbufferedServerConnection,
    incoming: &mut [u8],
    outgoing: &mut [u8],
) {
    let status = conn.process_tls_records(incoming);
    if let Ok(ConnectionState::EncodeTlsData(mut encode)) = status.state {
        if let Ok(n) = encode.encode(outgoing) {
            sys::send_now(stream.as_raw_fd(), &outgoing[..n]);
        }
    }
}
