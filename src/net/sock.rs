//! Socket calls the runtimes do not offer.

use std::io;
use std::os::fd::RawFd;

/// `recv(MSG_DONTWAIT)` into `buf`: `None` when the socket has nothing to read now (or the call
/// was interrupted), `Some(Ok(0))` at end of stream. For busy readers, which ask the socket
/// instead of waiting on their runtime's readiness poll (see `bench/FINDINGS.md`, "Busy
/// reads"). `fd` must be an open socket.
pub fn recv_now(fd: RawFd, buf: &mut [u8]) -> Option<io::Result<usize>> {
    // SAFETY: `buf` is a valid, writable buffer of `buf.len()` bytes for the whole call; the
    // kernel writes at most that many.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    if n >= 0 {
        return Some(Ok(n as usize));
    }
    let e = io::Error::last_os_error();
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => None,
        _ => Some(Err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::recv_now;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    #[test]
    fn reads_what_is_there_then_nothing_then_the_end() {
        let (mut a, b) = std::os::unix::net::UnixStream::pair().expect("socket pair");
        let mut buf = [0u8; 16];
        assert!(recv_now(b.as_raw_fd(), &mut buf).is_none(), "empty socket");
        a.write_all(b"hello").expect("write");
        let n = recv_now(b.as_raw_fd(), &mut buf)
            .expect("data")
            .expect("ok");
        assert_eq!(&buf[..n], b"hello");
        assert!(recv_now(b.as_raw_fd(), &mut buf).is_none(), "drained");
        drop(a);
        assert_eq!(
            recv_now(b.as_raw_fd(), &mut buf).map(|r| r.ok()),
            Some(Some(0))
        );
    }
}
