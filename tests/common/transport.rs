//! How the client under test reaches the server: plaintext HTTP, or TLS with a test CA
//! that the client is told to trust the way its users would. The test itself publishes
//! and reads metrics over plaintext either way (through `--plain-listen` next to the TLS
//! listener), so one scenario serves both.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::tls::Pki;
use super::{metric_at, Client, Server};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `http://127.0.0.1:PORT`.
    Plain,
    /// `https://localhost:PORT`, with a certificate from a test CA.
    Tls,
}

impl Transport {
    /// `""` or `"-https"`: to tell apart the artifacts (screenshots) of the two runs.
    pub fn suffix(self) -> &'static str {
        match self {
            Transport::Plain => "",
            Transport::Tls => "-https",
        }
    }
}

/// A server that a client under test reaches over `transport`, killed when dropped.
pub struct Served {
    pub server: Server,
    /// The CA and server certificate, over TLS (their directory goes when dropped).
    pub pki: Option<Pki>,
    /// Where the test publishes and reads metrics: plaintext either way.
    pub plain: SocketAddr,
}

impl Served {
    /// Starts `ringcast <args>` listening on `transport`; over TLS, with a new test CA and
    /// a plaintext listener for the test's own requests.
    pub fn start(transport: Transport, args: &[&str]) -> Served {
        let Transport::Tls = transport else {
            let server = Server::start(args);
            let plain = server.addr;
            return Served {
                server,
                pki: None,
                plain,
            };
        };
        // Unique within the process too (`cargo test` runs tests as threads).
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let pki = Pki::new(&format!(
            "served{}",
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        let mut all = pki.args();
        all.extend(["--plain-listen", "127.0.0.1:0"].map(String::from));
        all.extend(args.iter().map(|s| s.to_string()));
        let server = Server::start(&all.iter().map(String::as_str).collect::<Vec<_>>());
        let plain = super::tls::plain_addr(&server);
        Served {
            server,
            pki: Some(pki),
            plain,
        }
    }

    /// The base URL a client is given: `http://127.0.0.1:PORT`, or over TLS
    /// `https://localhost:PORT` (a name, as browsers expect; the certificate has both).
    pub fn url(&self) -> String {
        match self.pki {
            None => format!("http://{}", self.server.addr),
            Some(_) => format!("https://localhost:{}", self.server.addr.port()),
        }
    }

    /// Over TLS, has `client` trust the test CA, each client the way it is documented
    /// to: Node (its `https`, its `fetch`, and the `undici` package) takes extra roots
    /// from `NODE_EXTRA_CA_CERTS`; httpx from `SSL_CERT_FILE`; requests from
    /// `REQUESTS_CA_BUNDLE`. Chromium has no CA-file flag: the browser programs pass
    /// `CHROMIUM_SPKI_LIST` (the server key's pin) as its
    /// `--ignore-certificate-errors-spki-list`. Over plaintext, changes nothing.
    pub fn trust<'c>(&self, client: &'c mut Command) -> &'c mut Command {
        let Some(pki) = &self.pki else {
            return client;
        };
        (client.env("NODE_EXTRA_CA_CERTS", &pki.ca))
            .env("SSL_CERT_FILE", &pki.ca)
            .env("REQUESTS_CA_BUNDLE", &pki.ca)
            .env("CHROMIUM_SPKI_LIST", pki.spki_sha256())
    }

    /// Publishes `body` to `/publish?<query>` (over plaintext); returns the status and body.
    pub fn publish(&self, query: &str, body: &[u8]) -> (u16, String) {
        Client::connect(self.plain).publish(query, body, &[])
    }

    /// The value of a metric (summed over its label sets, or one exact label set).
    pub fn metric(&self, name: &str) -> u64 {
        metric_at(self.plain, name)
    }
}
