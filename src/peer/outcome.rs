//! How a visit ended; stored as `visit.outcome`.

use std::io;

/// Classified end of a visit attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The peer's piece state is known (or it stayed silent after the handshake, which
    /// BEP 3 allows for a peer with no pieces).
    Ok,
    /// No TCP connection within the connect timeout.
    ConnectTimeout,
    /// Connection refused (closed port).
    Refused,
    /// Connection reset by the peer.
    Reset,
    /// Host or network unreachable.
    Unreachable,
    /// Connected, but no handshake within the handshake timeout.
    HandshakeTimeout,
    /// The peer closed the connection before or during its handshake.
    ClosedInHandshake,
    /// The peer closed right after the handshake without any piece state.
    ClosedAfterHandshake,
    /// The peer does not speak the BitTorrent protocol (or speaks it encrypted).
    WrongProtocol,
    /// The peer answered for another torrent.
    InfoHashMismatch,
    /// A malformed or oversized message.
    ProtocolError,
    /// Incoming connection for a torrent btda does not analyse.
    UnknownInfoHash,
    /// btda stopped the visit (shutdown) before the answer was known.
    Interrupted,
    /// A failure on btda's side (e.g. out of file descriptors); not held against the peer.
    LocalError,
    /// The handshake carried our own peer id: btda reached itself (a tracker or the DHT
    /// listed our address). Closed at once; no peer is stored.
    Myself,
}

impl Outcome {
    /// The database value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::ConnectTimeout => "connect_timeout",
            Self::Refused => "refused",
            Self::Reset => "reset",
            Self::Unreachable => "unreachable",
            Self::HandshakeTimeout => "handshake_timeout",
            Self::ClosedInHandshake => "closed_in_handshake",
            Self::ClosedAfterHandshake => "closed_after_handshake",
            Self::WrongProtocol => "wrong_protocol",
            Self::InfoHashMismatch => "infohash_mismatch",
            Self::ProtocolError => "protocol_error",
            Self::UnknownInfoHash => "unknown_infohash",
            Self::Interrupted => "interrupted",
            Self::LocalError => "local_error",
            Self::Myself => "self",
        }
    }

    /// Whether the failure is btda's own (so the peer is retried without penalty).
    pub(crate) fn is_local(self) -> bool {
        matches!(self, Self::Interrupted | Self::LocalError)
    }

    /// Classifies an error of `connect`.
    pub(crate) fn of_connect_error(e: &io::Error) -> Self {
        use io::ErrorKind as K;
        match e.kind() {
            K::TimedOut | K::WouldBlock => Self::ConnectTimeout,
            K::ConnectionRefused => Self::Refused,
            K::ConnectionReset | K::ConnectionAborted => Self::Reset,
            K::HostUnreachable | K::NetworkUnreachable | K::AddrNotAvailable => Self::Unreachable,
            _ => Self::of_os_error(e).unwrap_or(Self::LocalError),
        }
    }

    /// Classifies a read/write error during the handshake.
    pub(crate) fn of_handshake_error(e: &io::Error) -> Self {
        use io::ErrorKind as K;
        match e.kind() {
            K::TimedOut | K::WouldBlock => Self::HandshakeTimeout,
            K::UnexpectedEof | K::BrokenPipe => Self::ClosedInHandshake,
            K::ConnectionReset | K::ConnectionAborted => Self::Reset,
            _ => Self::of_os_error(e).unwrap_or(Self::ClosedInHandshake),
        }
    }

    fn of_os_error(e: &io::Error) -> Option<Self> {
        // EMFILE / ENFILE / ENOBUFS / ENOMEM: our resources, not the peer's fault.
        match e.raw_os_error() {
            Some(23 | 24 | 105 | 12) => Some(Self::LocalError),
            Some(113) => Some(Self::Unreachable), // EHOSTUNREACH
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let e = |k| io::Error::from(k);
        assert_eq!(
            Outcome::of_connect_error(&e(io::ErrorKind::ConnectionRefused)),
            Outcome::Refused
        );
        assert_eq!(
            Outcome::of_connect_error(&e(io::ErrorKind::TimedOut)),
            Outcome::ConnectTimeout
        );
        assert_eq!(
            Outcome::of_connect_error(&io::Error::from_raw_os_error(24)),
            Outcome::LocalError
        );
        assert!(Outcome::LocalError.is_local());
        assert_eq!(
            Outcome::of_handshake_error(&e(io::ErrorKind::UnexpectedEof)),
            Outcome::ClosedInHandshake
        );
        assert_eq!(
            Outcome::of_handshake_error(&e(io::ErrorKind::WouldBlock)),
            Outcome::HandshakeTimeout
        );
        assert_eq!(Outcome::InfoHashMismatch.as_str(), "infohash_mismatch");
    }
}
