//! A connection to a peer as visits see it: TCP, either plaintext or, after an MSE
//! handshake, RC4 in both directions. Bytes that arrived together with a handshake are
//! served first (already decrypted), so the BitTorrent layer reads one continuous stream
//! whatever was negotiated.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::wire::mse::{CRYPTO_PLAINTEXT, CRYPTO_RC4, Established, Keystream};

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
    pub fn as_db(self) -> Option<&'static str> {
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
    tcp: TcpStream,
    keys: Option<(Keystream, Keystream)>,
    pending: Vec<u8>,
    at: usize,
    crypto: Crypto,
}

impl PeerStream {
    /// A plaintext connection; `already` are bytes read from it before (served first).
    pub fn plain(tcp: TcpStream, already: Vec<u8>) -> Self {
        Self {
            tcp,
            keys: None,
            pending: already,
            at: 0,
            crypto: Crypto::None,
        }
    }

    /// The connection after an MSE handshake.
    pub fn encrypted(tcp: TcpStream, done: Established) -> Self {
        Self {
            tcp,
            crypto: Crypto::of_select(done.select),
            keys: done.keystreams,
            pending: done.received,
            at: 0,
        }
    }

    /// The TCP connection back, with the bytes not yet served dropped (call it before
    /// reading beyond what was checked, e.g. to start MSE on a plaintext-looking one).
    pub fn into_tcp(self) -> TcpStream {
        self.tcp
    }

    /// How it was set up.
    pub fn crypto(&self) -> Crypto {
        self.crypto
    }

    /// The TCP socket's read timeout.
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.tcp.set_read_timeout(t)
    }

    /// The TCP socket's write timeout.
    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.tcp.set_write_timeout(t)
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
        let n = self.tcp.read(buf)?;
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
                self.tcp.write_all(&out)?;
            }
            None => self.tcp.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}
