//! A connection to a peer as visits see it, whatever carries it: a [`Transport`] (TCP
//! today; uTP behind the same trait next), either plaintext or, after an MSE handshake,
//! RC4 in both directions. Bytes that arrived together with a handshake are served first
//! (already decrypted), so the BitTorrent layer reads one continuous stream whatever was
//! negotiated. Reads wait with a deadline through the one timed-read helper here,
//! [`read_some_by`], which visits, the MSE driver, the metadata fetch and the fake peers
//! all use.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::outcome::Outcome;
use crate::shutdown::{POLL, Shutdown};
use crate::wire::mse::{CRYPTO_PLAINTEXT, CRYPTO_RC4, Established, Keystream};

/// A byte stream to a peer: what a visit needs of a connection, not how it is carried.
pub trait Transport: Read + Write + Send {
    /// Sets how long one read may block (`None`: forever).
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()>;
    /// Sets how long one write may block.
    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()>;
    /// The peer's address.
    fn peer_addr(&self) -> io::Result<SocketAddr>;
    /// The transport's name as stored (`tcp`).
    fn name(&self) -> &'static str;
}

impl Transport for TcpStream {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, t)
    }

    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, t)
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        TcpStream::peer_addr(self)
    }

    fn name(&self) -> &'static str {
        "tcp"
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        (**self).set_read_timeout(t)
    }

    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        (**self).set_write_timeout(t)
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        (**self).peer_addr()
    }

    fn name(&self) -> &'static str {
        (**self).name()
    }
}

/// Why a timed read returned no bytes.
#[derive(Debug)]
pub enum ReadError {
    /// The deadline passed.
    Timeout,
    /// The peer closed the connection.
    Closed,
    /// A stop was requested.
    Stopped,
    /// The read failed.
    Io(io::Error),
}

/// Reads what arrives (at least one byte) before `deadline`, checking `stop` at least
/// every [`POLL`] while waiting: the one waiting read of btda's peer connections.
pub fn read_some_by<S: Transport + ?Sized>(
    s: &mut S,
    buf: &mut [u8],
    deadline: Instant,
    stop: &Shutdown,
) -> Result<usize, ReadError> {
    loop {
        if stop.requested() {
            return Err(ReadError::Stopped);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ReadError::Timeout);
        }
        s.set_read_timeout(Some(left.min(POLL)))
            .map_err(ReadError::Io)?;
        match s.read(buf) {
            Ok(0) => return Err(ReadError::Closed),
            Ok(n) => return Ok(n),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
}

/// Reads exactly `buf.len()` bytes before `deadline`, checking `stop` while waiting.
pub(crate) fn read_exact_by<S: Transport + ?Sized>(
    s: &mut S,
    buf: &mut [u8],
    deadline: Instant,
    stop: &Shutdown,
) -> Result<(), ReadError> {
    let mut got = 0;
    while got < buf.len() {
        got += read_some_by(s, &mut buf[got..], deadline, stop)?;
    }
    Ok(())
}

/// The outcome of a handshake that a timed read ended.
pub(crate) fn handshake_failure(e: ReadError) -> Outcome {
    match e {
        ReadError::Timeout => Outcome::HandshakeTimeout,
        ReadError::Closed => Outcome::ClosedInHandshake,
        ReadError::Stopped => Outcome::Interrupted,
        ReadError::Io(e) => Outcome::of_handshake_error(&e),
    }
}

/// How a connection was set up; stored as `visit.encryption`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crypto {
    /// A plain BitTorrent handshake, no MSE.
    None,
    /// MSE, and the peers agreed to continue in plaintext.
    MsePlaintext,
    /// MSE, RC4 for the whole connection.
    MseRc4,
}

impl Crypto {
    /// The database value (`NULL` for no MSE).
    pub(crate) fn as_db(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::MsePlaintext => Some("plaintext"),
            Self::MseRc4 => Some("rc4"),
        }
    }

    fn of_select(select: u32) -> Self {
        match select {
            CRYPTO_RC4 => Self::MseRc4,
            CRYPTO_PLAINTEXT => Self::MsePlaintext,
            _ => Self::None,
        }
    }
}

/// A peer connection (see the module doc).
pub struct PeerStream {
    conn: Box<dyn Transport>,
    keys: Option<(Keystream, Keystream)>,
    pending: Vec<u8>,
    at: usize,
    crypto: Crypto,
}

impl PeerStream {
    /// A plaintext connection; `already` are bytes read from it before (served first).
    pub fn plain(conn: impl Transport + 'static, already: Vec<u8>) -> Self {
        Self::plain_boxed(Box::new(conn), already)
    }

    /// [`Self::plain`] on a boxed transport.
    pub(crate) fn plain_boxed(conn: Box<dyn Transport>, already: Vec<u8>) -> Self {
        Self {
            conn,
            keys: None,
            pending: already,
            at: 0,
            crypto: Crypto::None,
        }
    }

    /// The connection after an MSE handshake.
    pub fn encrypted(conn: Box<dyn Transport>, done: Established) -> Self {
        Self {
            conn,
            crypto: Crypto::of_select(done.select),
            keys: done.keystreams,
            pending: done.received,
            at: 0,
        }
    }

    /// The transport back, with the bytes not yet served dropped (call it before
    /// reading beyond what was checked, e.g. to start MSE on a plaintext-looking one).
    pub fn into_transport(self) -> Box<dyn Transport> {
        self.conn
    }

    /// How it was set up.
    pub fn crypto(&self) -> Crypto {
        self.crypto
    }
}

impl Transport for PeerStream {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.conn.set_read_timeout(t)
    }

    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.conn.set_write_timeout(t)
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.conn.peer_addr()
    }

    fn name(&self) -> &'static str {
        self.conn.name()
    }
}

impl Read for PeerStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at < self.pending.len() {
            let n = buf.len().min(self.pending.len() - self.at);
            buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
            self.at += n;
            if self.at == self.pending.len() {
                self.pending = Vec::new();
                self.at = 0;
            }
            return Ok(n);
        }
        let n = self.conn.read(buf)?;
        if let Some((_, recv)) = &mut self.keys {
            recv.apply(&mut buf[..n]);
        }
        Ok(n)
    }
}

impl Write for PeerStream {
    /// Writes all of `buf` or fails: a partial write would put the keystream out of
    /// step with the peer's.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.keys {
            Some((send, _)) => {
                let mut out = buf.to_vec();
                send.apply(&mut out);
                self.conn.write_all(&out)?;
            }
            None => self.conn.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.conn.flush()
    }
}

/// An in-memory transport for tests: two ends of a pipe, each reading what the other
/// wrote, with read timeouts as a socket has them. Shows that nothing above
/// [`Transport`] needs a socket.
#[cfg(test)]
pub(crate) mod pipe {
    use std::io::{self, Read, Write};
    use std::net::SocketAddr;
    use std::sync::Mutex;
    use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
    use std::time::Duration;

    /// One end.
    pub(crate) struct End {
        tx: Option<Sender<Vec<u8>>>,
        rx: Mutex<Receiver<Vec<u8>>>,
        pending: Vec<u8>,
        timeout: Mutex<Option<Duration>>,
    }

    /// Two connected ends.
    pub(crate) fn pair() -> (End, End) {
        let (a_tx, b_rx) = channel();
        let (b_tx, a_rx) = channel();
        let end = |tx, rx| End {
            tx: Some(tx),
            rx: Mutex::new(rx),
            pending: Vec::new(),
            timeout: Mutex::new(None),
        };
        (end(a_tx, a_rx), end(b_tx, b_rx))
    }

    impl End {
        /// Closes the writing side (the other end reads end of stream).
        pub(crate) fn close(&mut self) {
            self.tx = None;
        }
    }

    impl Read for End {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.pending.is_empty() {
                let timeout = *self.timeout.lock().expect("not poisoned");
                let rx = self.rx.lock().expect("not poisoned");
                let got = match timeout {
                    Some(t) => rx.recv_timeout(t),
                    None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                };
                match got {
                    Ok(bytes) => self.pending = bytes,
                    Err(RecvTimeoutError::Timeout) => return Err(io::ErrorKind::WouldBlock.into()),
                    Err(RecvTimeoutError::Disconnected) => return Ok(0),
                }
            }
            let n = buf.len().min(self.pending.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            Ok(n)
        }
    }

    impl Write for End {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            match &self.tx {
                Some(tx) if tx.send(buf.to_vec()).is_ok() => Ok(buf.len()),
                _ => Err(io::ErrorKind::BrokenPipe.into()),
            }
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl super::Transport for End {
        fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
            *self.timeout.lock().expect("not poisoned") = t;
            Ok(())
        }

        fn set_write_timeout(&self, _: Option<Duration>) -> io::Result<()> {
            Ok(())
        }

        fn peer_addr(&self) -> io::Result<SocketAddr> {
            Ok(SocketAddr::from(([127, 0, 0, 1], 1)))
        }

        fn name(&self) -> &'static str {
            "pipe"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timed_reads_wait_for_the_deadline_the_peer_or_the_stop() {
        let (mut a, mut b) = pipe::pair();
        let stop = Shutdown::new();
        let mut buf = [0u8; 8];
        let soon = Instant::now() + Duration::from_millis(50);
        assert!(matches!(
            read_some_by(&mut a, &mut buf, soon, &stop),
            Err(ReadError::Timeout)
        ));
        b.write_all(b"hello").unwrap();
        let later = Instant::now() + Duration::from_secs(5);
        let mut five = [0u8; 5];
        read_exact_by(&mut a, &mut five, later, &stop).unwrap();
        assert_eq!(&five, b"hello");
        stop.request();
        assert!(matches!(
            read_some_by(&mut a, &mut buf, later, &stop),
            Err(ReadError::Stopped)
        ));
        b.close();
        let running = Shutdown::new();
        assert!(matches!(
            read_some_by(&mut a, &mut buf, later, &running),
            Err(ReadError::Closed)
        ));
    }

    #[test]
    fn a_peer_stream_serves_bytes_read_before_then_the_transport() {
        let (a, mut b) = pipe::pair();
        let mut s = PeerStream::plain(a, b"ab".to_vec());
        assert_eq!(s.name(), "pipe");
        assert_eq!(s.crypto(), Crypto::None);
        b.write_all(b"cd").unwrap();
        let mut four = [0u8; 4];
        read_exact_by(
            &mut s,
            &mut four,
            Instant::now() + Duration::from_secs(5),
            &Shutdown::new(),
        )
        .unwrap();
        assert_eq!(&four, b"abcd");
    }
}
