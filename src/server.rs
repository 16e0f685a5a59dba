//! Starting the workers, and stopping them: one thread per worker, each with its own
//! runtime, listener and data plane; SIGTERM/SIGINT begin the drain.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;
use std::thread::JoinHandle;

use socket2::{Domain, Protocol, Socket, Type};

use crate::broadcast::frame::Body;
use crate::broadcast::history::Bounds;
use crate::broadcast::inbox::Inbox;
use crate::broadcast::sequencer::Sequencer;
use crate::census::Census;
use crate::cluster::Cluster;
use crate::config::{Config, Driver};
use crate::conn::route::{preamble, stream_head};
use crate::metrics::WorkerStats;
use crate::shared::Shared;
use crate::stream::plane::Plane;
use crate::worker::{self, Events, Worker};
use crate::{accept, sys};

/// Descriptors kept back from the connection limit: listeners, rings, epoll,
/// standard streams, and room for the process to log and accept-and-refuse.
const FD_RESERVE: u64 = 100;
/// Listen backlog: absorbs a reconnect storm while the workers catch up.
const BACKLOG: i32 = 4096;

/// A running server.
pub struct Server {
    pub shared: Arc<Shared>,
    pub local_addr: SocketAddr,
    /// The plaintext listener next to the TLS one (`--plain-listen`).
    pub plain_addr: Option<SocketAddr>,
    /// "io_uring" or "epoll".
    pub driver: &'static str,
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    /// Binds every worker's listener and starts the workers.
    pub fn start(config: Config) -> io::Result<Server> {
        config
            .validate()
            .map_err(|why| io::Error::new(io::ErrorKind::InvalidInput, why))?;
        let nofile = sys::raise_nofile_limit().unwrap_or(1024);
        sys::return_freed_memory_promptly();
        sys::disable_transparent_huge_pages();
        let workers = match config.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let uring = match config.driver {
            Driver::Legacy => false,
            Driver::Auto => monoio::utils::detect_uring(),
            Driver::Uring if monoio::utils::detect_uring() => true,
            Driver::Uring => {
                return Err(io::Error::other(
                    "--driver uring: io_uring is not available here",
                ))
            }
        };
        let shared_port = config.reuse_port || config.cluster.is_some();
        if !shared_port {
            refuse_shared_port(config.listen)?;
        }
        let tls = match &config.tls {
            Some(files) => Some(Arc::new(
                crate::tls::Acceptor::new(files.clone())
                    .map_err(|why| io::Error::new(io::ErrorKind::InvalidInput, why))?,
            )),
            None => None,
        };
        let listeners = bind_listeners(config.listen, workers)?;
        let local_addr = listeners[0].local_addr()?;
        let plain: Vec<Option<std::net::TcpListener>> = match config.plain_listen {
            Some(addr) => {
                if !shared_port {
                    refuse_shared_port(addr)?;
                }
                bind_listeners(addr, workers)?
                    .into_iter()
                    .map(Some)
                    .collect()
            }
            None => (0..workers).map(|_| None).collect(),
        };
        let plain_addr = match plain.first() {
            Some(Some(l)) => Some(l.local_addr()?),
            _ => None,
        };
        let max_connections = config
            .max_connections
            .unwrap_or(nofile.saturating_sub(FD_RESERVE).max(1) as usize);
        let inboxes: Box<[Arc<Inbox>]> = (0..workers).map(|_| Arc::new(Inbox::default())).collect();
        let bounds = Bounds {
            count: config.history,
            bytes: config.history_bytes,
            ttl_ms: config.history_ttl.as_millis() as u64,
        };
        let preamble = |body| preamble(stream_head(), body, config.retry);
        let census = Arc::new(Census::new(workers));
        let (sequencer, cluster) = match &config.cluster {
            None => (Arc::new(Sequencer::new(inboxes.clone(), bounds)), None),
            Some(settings) => {
                let sequencer = Arc::new(Sequencer::clustered(inboxes.clone(), bounds));
                let cluster = Cluster::start(settings.clone(), sequencer.clone(), census.clone())
                    .map_err(io::Error::other)?;
                (sequencer, Some(cluster))
            }
        };
        let shared = Arc::new(Shared {
            sequencer,
            census,
            cluster,
            inboxes,
            stats: (0..workers).map(|_| WorkerStats::default()).collect(),
            open: AtomicUsize::new(0),
            max_connections,
            stream_preamble: [preamble(Body::Chunked), preamble(Body::Close)],
            draining: AtomicBool::new(false),
            hot: Default::default(),
            tls,
            config,
        });
        let mut threads = Vec::with_capacity(workers);
        for (index, listener) in listeners.into_iter().zip(plain).enumerate() {
            let shared = shared.clone();
            let thread = std::thread::Builder::new()
                .name(format!("ringcast-w{index}"))
                .spawn(move || run_worker(index, shared, listener, uring))?;
            threads.push(thread);
        }
        let driver = if uring { "io_uring" } else { "epoll" };
        // Logged before the start line, so that whoever waits for that line (tests, the
        // bench scripts) finds this one already there.
        if let Some(addr) = plain_addr {
            log::info!(plain_listen:% = addr; "plaintext listener next to the TLS one");
        }
        let scheme = if shared.tls.is_some() {
            "https"
        } else {
            "http"
        };
        log::info!(
            version = env!("CARGO_PKG_VERSION"), pid = std::process::id(), listen:% = local_addr,
            scheme = scheme, workers = workers, driver = driver,
            max_connections = max_connections, nofile = nofile;
            "ringcast started"
        );
        Ok(Server {
            shared,
            local_addr,
            plain_addr,
            driver,
            threads,
        })
    }

    /// Reads the TLS certificate and key again (SIGHUP): new handshakes use them, live
    /// connections keep theirs. On an error the old ones stay, and the error is logged.
    pub fn reload(&self) {
        let Some(tls) = &self.shared.tls else {
            log::info!("SIGHUP: nothing to reload (no --tls-cert)");
            return;
        };
        match tls.reload() {
            Ok(()) => log::info!(cert:? = tls.files().cert; "TLS certificate reloaded"),
            Err(why) => {
                log::error!(error:% = why; "TLS certificate not reloaded; the old one stays")
            }
        }
    }

    /// Begins the drain; `join` waits for it to finish.
    pub fn shutdown(&self) {
        self.shared.begin_drain();
    }

    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Runs until SIGTERM or SIGINT, then drains and returns; SIGHUP reloads the TLS
/// certificate.
pub fn run(config: Config) -> io::Result<()> {
    let signals = sys::block_control_signals();
    let server = Server::start(config)?;
    let signal = loop {
        match sys::wait_signal(&signals) {
            libc::SIGHUP => server.reload(),
            signal => break signal,
        }
    };
    log::info!(signal = signal, drain:? = server.shared.config.drain; "draining");
    server.shutdown();
    server.join();
    log::info!("stopped");
    Ok(())
}

/// Fails if some socket already listens on `addr`: a bind without SO_REUSEPORT is
/// refused exactly then (a listener of another process with SO_REUSEPORT would otherwise
/// silently share the port, and the kernel would split new connections between the two).
fn refuse_shared_port(addr: SocketAddr) -> io::Result<()> {
    if addr.port() == 0 {
        return Ok(());
    }
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    probe.set_reuse_address(true)?;
    match probe.bind(&addr.into()) {
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Err(io::Error::new(
            e.kind(),
            format!("{addr} is already in use (another ringcast?); pass --reuse-port to share it"),
        )),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("while binding {addr}: {e}"),
        )),
        Ok(()) => Ok(()),
    }
}

fn bind_listeners(addr: SocketAddr, workers: usize) -> io::Result<Vec<std::net::TcpListener>> {
    let mut listeners = Vec::with_capacity(workers);
    let mut addr = addr;
    for _ in 0..workers {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket
            .bind(&addr.into())
            .map_err(|e| io::Error::new(e.kind(), format!("while binding {addr}: {e}")))?;
        socket.listen(BACKLOG)?;
        let listener: std::net::TcpListener = socket.into();
        // Port 0 resolves on the first bind; the other workers share that port.
        addr = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// The setup of monoio's ring: completions that arrive while the worker runs in user
/// space wait for its next system call, which comes soon in a worker's loop, instead of
/// interrupting it with an IPI (`IORING_SETUP_COOP_TASKRUN`, Linux 5.19). A sleeping
/// worker is still woken at once. Older kernels refuse the flag, and get the default ring.
fn cooperative_ring() -> monoio_uring::Builder {
    let mut urb = monoio_uring::IoUring::builder();
    urb.setup_coop_taskrun();
    urb
}

type Runtime = monoio::FusionRuntime<
    monoio::time::TimeDriver<monoio::IoUringDriver>,
    monoio::time::TimeDriver<monoio::LegacyDriver>,
>;

/// A worker's listeners: the main one (TLS with `--tls-cert`), and the plaintext one of
/// `--plain-listen`.
type Listeners = (std::net::TcpListener, Option<std::net::TcpListener>);

fn run_worker(index: usize, shared: Arc<Shared>, (listener, plain): Listeners, uring: bool) {
    let built: io::Result<Runtime> = if uring {
        let build = |urb| {
            monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .uring_builder(urb)
                .with_entries(1024)
                .enable_timer()
                .build()
        };
        build(cooperative_ring())
            .or_else(|_| build(monoio_uring::IoUring::builder()))
            .map(Into::into)
    } else {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .map(Into::into)
    };
    let mut runtime = match built {
        Ok(rt) => rt,
        Err(e) => {
            log::error!(worker = index, error:% = e; "cannot start the worker's runtime");
            std::process::exit(1);
        }
    };
    runtime.block_on(async move {
        let plane = match uring {
            true => Plane::ring(shared.config.ring_entries).or_else(|e| {
                log::warn!(worker = index, error:% = e; "private io_uring unavailable; subscriber writes use epoll");
                Plane::epoll()
            }),
            false => Plane::epoll(),
        };
        let plane = match plane {
            Ok(p) => p,
            Err(e) => {
                log::error!(worker = index, error:% = e; "cannot set up the data plane");
                std::process::exit(1);
            }
        };
        let adopt = |listener| match monoio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                log::error!(worker = index, error:% = e; "cannot adopt the listener");
                std::process::exit(1);
            }
        };
        let listener = adopt(listener);
        let plain = plain.map(adopt);
        let events = match plane.pollable().and_then(|fd| Events::new(shared.inboxes[index].clone(), fd, uring)) {
            Ok(e) => e,
            Err(e) => {
                log::error!(worker = index, error:% = e; "cannot watch the data plane");
                std::process::exit(1);
            }
        };
        let fds = std::iter::once(&listener).chain(&plain);
        let listener_fds = fds.map(std::os::fd::AsRawFd::as_raw_fd).collect();
        let tls = shared.tls.is_some();
        let worker = Worker::new(index, shared, plane, listener_fds, events.kick());
        let worker = Rc::new(RefCell::new(worker));
        monoio::spawn(accept::run(listener, worker.clone(), uring, tls));
        if let Some(plain) = plain {
            monoio::spawn(accept::run(plain, worker.clone(), uring, false));
        }
        worker::run(worker, events).await;
    });
}
