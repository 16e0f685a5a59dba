//! The few raw system calls loadgen needs: the open-file limit, the monotonic clock,
//! subscriber sockets bound to a source address, non-blocking send/recv on a raw fd,
//! and the process's own CPU time. Every `unsafe` block of the crate lives here.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::RawFd;

use socket2::{Domain, Socket, Type};

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the new soft limit.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit struct for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let want = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `want` is a valid rlimit struct; the call only reads it.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    Ok(lim.rlim_cur)
}

/// CLOCK_MONOTONIC in nanoseconds. It is one clock for the whole host on Linux, so a
/// timestamp taken by the publisher process compares with one taken by a subscriber
/// process.
#[inline]
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A non-blocking IPv4 TCP socket, bound to `src` (port chosen at connect time), with
/// an optional small receive buffer, connecting to `dst`. Returns the socket and
/// whether the connect is still in progress.
pub fn start_connect(
    src: Option<Ipv4Addr>,
    dst: SocketAddr,
    rcvbuf: Option<usize>,
) -> io::Result<(Socket, bool)> {
    let sock = Socket::new(Domain::IPV4, Type::STREAM.nonblocking().cloexec(), None)?;
    if let Some(bytes) = rcvbuf {
        // Before connect, so the advertised window scale matches the small buffer.
        sock.set_recv_buffer_size(bytes)?;
    }
    sock.set_nodelay(true)?;
    if let Some(ip) = src {
        set_bind_address_no_port(&sock)?;
        sock.bind(&SocketAddr::V4(SocketAddrV4::new(ip, 0)).into())?;
    }
    match sock.connect(&dst.into()) {
        Ok(()) => Ok((sock, false)),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok((sock, true)),
        Err(e) => Err(e),
    }
}

/// IP_BIND_ADDRESS_NO_PORT: bind the address now, pick the port at connect time by the
/// full 4-tuple. Without it every bound socket reserves a port, and ports run out at
/// about 28k per source address.
fn set_bind_address_no_port(sock: &Socket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: the fd is open (owned by `sock`), and the option value points to a live
    // c_int whose size is passed alongside.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `recv(fd, buf, MSG_DONTWAIT)`: reads what is there without blocking, whatever the
/// fd's own flags. `Ok(0)` is end of stream.
#[inline]
pub fn recv_nowait(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid writable region of `buf.len()` bytes for the call; an
    // invalid fd only yields EBADF.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// `send(fd, buf, MSG_DONTWAIT | MSG_NOSIGNAL)`: a peer that went away is an error,
/// never a SIGPIPE.
#[inline]
pub fn send_nowait(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    // SAFETY: `buf` is a valid readable region of `buf.len()` bytes for the call.
    let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), flags) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Shuts down the read side of a socket owned by some task: its pending readiness poll
/// fires and its next recv returns 0, which is how one task ends another's connection
/// without a timer or a channel per connection.
pub fn shutdown_read(fd: RawFd) {
    // SAFETY: shutdown takes no pointers; a stale fd only yields EBADF/ENOTSOCK, which
    // is ignored because the connection is ending either way.
    unsafe { libc::shutdown(fd, libc::SHUT_RD) };
}

/// User + system CPU seconds this process has used so far, all threads included.
pub fn own_cpu_seconds() -> f64 {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage struct for the duration of the call.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

/// Clock ticks per second, the unit of utime/stime in `/proc/<pid>/stat`.
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf takes no pointers.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// The pending error of a socket (SO_ERROR), which is how a non-blocking connect
/// reports that it failed.
pub fn socket_error(fd: RawFd) -> Option<io::Error> {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` and `len` are live, writable and sized as getsockopt expects.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    match (rc, err) {
        (0, 0) => None,
        (0, e) => Some(io::Error::from_raw_os_error(e)),
        _ => Some(io::Error::last_os_error()),
    }
}
