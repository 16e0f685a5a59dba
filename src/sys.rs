//! The raw system calls the server makes outside its runtimes: file-descriptor limits,
//! socket options and shutdowns, and epoll for the legacy plane.
//! Every `unsafe` block outside the io_uring submission code lives here.

#![allow(unsafe_code)] // one of the three homes of `unsafe` (see lib.rs): system calls

use std::io;
use std::os::fd::RawFd;

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Makes the allocator return a page to the OS as soon as it is entirely free, instead
/// of after a delay that only a later allocation in the same thread would act on: an
/// idle worker otherwise keeps the buffers of a finished handshake burst resident.
pub fn return_freed_memory_promptly() {
    // `mi_option_purge_delay` in mimalloc v3's `mimalloc.h` (the bindings do not name it).
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: sets a process-wide allocator option before the workers start.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) };
}

/// Keeps the process's memory in 4 KiB pages. With transparent huge pages the allocator's
/// arenas (which it marks MADV_HUGEPAGE) are faulted in 2 MiB at a time: an idle server
/// grew by 5.7 MB (300 B per subscriber at 19,000) when the first heartbeat sweep touched
/// a few fresh bytes, and its RSS moved in 2 MiB steps from run to run. A server that
/// holds many small idle connections gains nothing from huge pages.
pub fn disable_transparent_huge_pages() {
    // `mi_option_allow_thp` in mimalloc v3's `mimalloc.h`: no MADV_HUGEPAGE from now on.
    const ALLOW_THP: libmimalloc_sys::mi_option_t = 43;
    // SAFETY: sets a process-wide allocator option; prctl takes no pointers here.
    unsafe {
        libmimalloc_sys::mi_option_set(ALLOW_THP, 0);
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Raises the soft open-file limit to the hard limit; returns the new soft limit.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the rlimit we own.
    check(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the rlimit we own.
        check(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) })?;
        lim.rlim_cur = lim.rlim_max;
    }
    Ok(lim.rlim_cur)
}

/// How a socket is shut down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shut {
    /// Wakes a pending read with end-of-file; writing still works (used to interrupt a
    /// handshake read when its timer fires).
    Read,
    /// Sends FIN after queued data; the peer sees a clean end of stream.
    Write,
    /// Both: wakes every pending operation on the socket.
    Both,
}

pub fn shutdown(fd: RawFd, how: Shut) {
    let how = match how {
        Shut::Read => libc::SHUT_RD,
        Shut::Write => libc::SHUT_WR,
        Shut::Both => libc::SHUT_RDWR,
    };
    // SAFETY: shutdown on a descriptor we own; errors (e.g. ENOTCONN after the peer left)
    // mean there is nothing left to shut down.
    unsafe { libc::shutdown(fd, how) };
}

pub fn close(fd: RawFd) {
    // SAFETY: the caller owns `fd` and never uses it again.
    unsafe { libc::close(fd) };
}

/// Makes the next close send RST and free the socket's buffers at once, instead of
/// keeping unsent data in an orphaned socket (for evicting readers that stopped reading).
pub fn set_abortive_close(fd: RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    set_opt(fd, libc::SOL_SOCKET, libc::SO_LINGER, &linger);
}

pub fn set_sndbuf(fd: RawFd, bytes: usize) {
    let bytes = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    set_opt(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, &bytes);
}

pub fn set_nodelay(fd: RawFd) {
    set_opt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, &1 as &libc::c_int);
}

fn set_opt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) {
    // SAFETY: `value` points to a live T of the size we pass. A failure leaves the
    // kernel's default in place, which is safe for every option we set.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
}

/// Takes the next connection waiting in a listener's queue, without waiting for one
/// (the listener is nonblocking): `Ok(None)` when the queue is empty. `nonblocking`
/// sets the new socket's mode, to match what the runtime's own accept hands out.
pub fn accept_queued(
    listener: RawFd,
    nonblocking: bool,
) -> io::Result<Option<(std::net::TcpStream, std::net::SocketAddr)>> {
    use std::os::fd::FromRawFd;
    let flags = libc::SOCK_CLOEXEC | if nonblocking { libc::SOCK_NONBLOCK } else { 0 };
    loop {
        // SAFETY: accept4 writes at most `len` bytes of address into the storage that
        // try_init hands us, and sets `len` to what it wrote.
        let accepted = unsafe {
            socket2::SockAddr::try_init(|storage, len| {
                check(libc::accept4(listener, storage.cast(), len, flags))
            })
        };
        match accepted {
            Ok((fd, addr)) => {
                // SAFETY: accept4 returned a new descriptor that nothing else owns.
                let stream = unsafe { std::net::TcpStream::from_raw_fd(fd) };
                let peer = addr.as_socket().unwrap_or_else(|| {
                    std::net::SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))
                });
                return Ok(Some((stream, peer)));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// What a subscriber's socket had to say after it became readable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readable {
    /// The peer closed (or reset) its side.
    Closed,
    /// Bytes were read and thrown away (a subscriber has nothing more to say); how many.
    Discarded(usize),
}

/// Reads and discards what a streaming subscriber sent, without blocking, to learn
/// whether it closed. Bounded so a client that keeps sending cannot hold the worker.
pub fn drain_readable(fd: RawFd) -> Readable {
    let mut scratch = [0u8; 4096];
    let mut total = 0;
    for _ in 0..16 {
        // SAFETY: recv writes at most scratch.len() bytes into the stack buffer we own.
        let n = unsafe {
            libc::recv(
                fd,
                scratch.as_mut_ptr().cast(),
                scratch.len(),
                libc::MSG_DONTWAIT,
            )
        };
        match n {
            0 => return Readable::Closed,
            n if n > 0 => total += n as usize,
            _ => {
                let err = io::Error::last_os_error();
                return match err.kind() {
                    io::ErrorKind::WouldBlock => Readable::Discarded(total),
                    io::ErrorKind::Interrupted => continue,
                    _ => Readable::Closed,
                };
            }
        }
    }
    Readable::Discarded(total)
}

/// Whether any of `fds` has bytes to read or a hang-up waiting, without blocking (a
/// `poll` per 32 descriptors; a failed call says no).
pub fn any_readable(fds: &[RawFd]) -> bool {
    fds.chunks(32).any(|chunk| {
        let mut polls = [libc::pollfd {
            fd: -1,
            events: 0,
            revents: 0,
        }; 32];
        for (p, &fd) in polls.iter_mut().zip(chunk) {
            p.fd = fd;
            p.events = libc::POLLIN | libc::POLLRDHUP;
        }
        // SAFETY: poll reads and writes `chunk.len()` entries of the array we own.
        unsafe { libc::poll(polls.as_mut_ptr(), chunk.len() as libc::nfds_t, 0) > 0 }
    })
}

/// Appends what the socket holds right now to `buf`, up to its spare capacity, without
/// blocking. `None` when it holds nothing (or the call failed: the caller then reads
/// through its runtime, which reports any error); `Some(0)` at end of stream.
pub fn recv_now(fd: RawFd, buf: &mut Vec<u8>) -> Option<usize> {
    let spare = buf.spare_capacity_mut();
    // SAFETY: recv writes at most spare.len() bytes into the spare capacity we borrow.
    let n = unsafe {
        libc::recv(
            fd,
            spare.as_mut_ptr().cast(),
            spare.len(),
            libc::MSG_DONTWAIT,
        )
    };
    let n = usize::try_from(n).ok()?;
    // SAFETY: recv initialised the first n bytes past the length, within the capacity.
    unsafe { buf.set_len(buf.len() + n) };
    Some(n)
}

/// Sends what the socket takes right now, without blocking (the socket itself may be in
/// blocking mode under io_uring). Returns the bytes sent (0 when it would block or failed:
/// the caller sends the rest through its runtime, which reports any error).
pub fn send_now(fd: RawFd, bytes: &[u8]) -> usize {
    // SAFETY: send reads at most bytes.len() bytes from the slice we borrow.
    let n = unsafe {
        libc::send(
            fd,
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    usize::try_from(n).unwrap_or(0)
}

/// Writes an iovec array without blocking. Returns bytes written or a negative errno,
/// the same convention as an io_uring completion.
///
/// # Safety
/// Every iovec must point to `iov_len` readable bytes.
pub unsafe fn writev(fd: RawFd, iov: &[libc::iovec]) -> i32 {
    let count = iov.len().min(libc::UIO_MAXIOV as usize) as libc::c_int;
    // SAFETY: the caller guarantees the iovecs are valid; count is within the slice.
    let n = unsafe { libc::writev(fd, iov.as_ptr(), count) };
    if n < 0 {
        -io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    } else {
        n as i32
    }
}

pub mod epoll {
    //! The readiness calls of the legacy plane.
    use super::check;
    use std::io;
    use std::os::fd::RawFd;

    pub use libc::epoll_event as Event;

    pub fn create() -> io::Result<RawFd> {
        // SAFETY: creates a new descriptor; no pointers involved.
        check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })
    }

    pub fn add(epfd: RawFd, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: epoll_ctl reads the event we own.
        check(unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, fd, &mut ev) }).map(drop)
    }

    pub fn delete(epfd: RawFd, fd: RawFd) {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: as above; failure means the fd was not registered.
        unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_DEL, fd, &mut ev) };
    }

    /// Collects ready events without blocking.
    pub fn wait(epfd: RawFd, events: &mut Vec<Event>) -> usize {
        events.clear();
        if events.capacity() == 0 {
            events.reserve(1024);
        }
        let cap = events.capacity().min(i32::MAX as usize);
        // SAFETY: the kernel writes at most `cap` events into the vector's spare capacity,
        // and we set the length to what it reports.
        unsafe {
            let n = libc::epoll_wait(epfd, events.as_mut_ptr(), cap as i32, 0);
            if n > 0 {
                events.set_len(n as usize);
            }
        }
        events.len()
    }
}

/// Blocks SIGTERM, SIGINT and SIGHUP in this thread and every thread it starts
/// afterwards, so they are only ever taken by [`wait_signal`]. Call before starting
/// workers.
pub fn block_control_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise the set we own; pthread_sigmask reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Waits for one of the blocked signals; returns its number.
pub fn wait_signal(set: &libc::sigset_t) -> i32 {
    let mut sig = 0;
    loop {
        // SAFETY: sigwait reads the set and writes the signal number we own.
        if unsafe { libc::sigwait(set, &mut sig) } == 0 {
            return sig;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn recv_now_appends_what_is_there_and_tells_empty_from_closed() {
        use std::io::Write;
        let (mut peer, ours) = std::os::unix::net::UnixStream::pair().unwrap();
        let fd = ours.as_raw_fd();
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(b"GET");
        assert_eq!(recv_now(fd, &mut buf), None, "nothing sent yet");
        peer.write_all(b" /healthz").unwrap();
        assert_eq!(recv_now(fd, &mut buf), Some(9));
        assert_eq!(buf, b"GET /healthz");
        drop(peer);
        assert_eq!(recv_now(fd, &mut buf), Some(0), "end of stream");
    }

    #[test]
    fn accept_queued_takes_every_waiting_connection_then_reports_an_empty_queue() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(accept_queued(listener.as_raw_fd(), false)
            .unwrap()
            .is_none());
        let clients: Vec<_> = (0..3)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let mut peers = Vec::new();
        for _ in 0..1000 {
            match accept_queued(listener.as_raw_fd(), true).unwrap() {
                Some((stream, peer)) => {
                    assert_eq!(stream.peer_addr().unwrap(), peer);
                    peers.push(peer);
                }
                None if peers.len() == clients.len() => break,
                None => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        }
        let mut expected: Vec<_> = clients.iter().map(|c| c.local_addr().unwrap()).collect();
        expected.sort();
        peers.sort();
        assert_eq!(peers, expected);
        assert!(accept_queued(listener.as_raw_fd(), false)
            .unwrap()
            .is_none());
    }
}
