//! BEP 55 `ut_holepunch` messages, sans-IO: the payload of an extended message (after
//! the extended id). Layout: msg_type (1), addr_type (1: 0 IPv4, 1 IPv6), address
//! (4 or 16), port (2), err_code (4, big-endian; 0 in non-error messages). libtorrent
//! leaves err_code out of non-error messages, so a missing err_code reads as 0; bytes
//! after it are ignored.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What a holepunch message asks or tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Initiator → relay: "introduce me to this endpoint".
    Rendezvous,
    /// Relay → both ends: "open uTP to this endpoint now".
    Connect,
    /// Relay → initiator: the rendezvous cannot be done, with a reason.
    Error(PunchError),
}

/// BEP 55 error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PunchError {
    /// 1: the target endpoint is invalid.
    NoSuchPeer,
    /// 2: the relay is not connected to the target.
    NotConnected,
    /// 3: the target does not support holepunch.
    NoSupport,
    /// 4: the target is the relay itself.
    NoSelf,
    /// Any other code.
    Other(u32),
}

impl PunchError {
    /// The code on the wire.
    pub fn code(self) -> u32 {
        match self {
            Self::NoSuchPeer => 1,
            Self::NotConnected => 2,
            Self::NoSupport => 3,
            Self::NoSelf => 4,
            Self::Other(n) => n,
        }
    }

    fn from_code(n: u32) -> Self {
        match n {
            1 => Self::NoSuchPeer,
            2 => Self::NotConnected,
            3 => Self::NoSupport,
            4 => Self::NoSelf,
            n => Self::Other(n),
        }
    }

    /// A short name for logs and statistics.
    pub fn name(self) -> &'static str {
        match self {
            Self::NoSuchPeer => "no_such_peer",
            Self::NotConnected => "not_connected",
            Self::NoSupport => "no_support",
            Self::NoSelf => "no_self",
            Self::Other(_) => "other",
        }
    }
}

/// One holepunch message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holepunch {
    /// Its type (and error code).
    pub kind: Kind,
    /// The endpoint it is about.
    pub addr: SocketAddr,
}

/// Why a holepunch payload was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HolepunchError {
    /// Shorter than its address type needs.
    #[error("holepunch message too short ({0} bytes)")]
    Short(usize),
    /// msg_type not 0, 1 or 2.
    #[error("unknown holepunch message type {0}")]
    UnknownType(u8),
    /// addr_type not 0 or 1.
    #[error("unknown holepunch address type {0}")]
    UnknownAddress(u8),
    /// An error message with err_code 0 (or missing).
    #[error("holepunch error message without an error code")]
    NoCode,
}

impl Holepunch {
    /// A rendezvous for `target`.
    pub fn rendezvous(target: SocketAddr) -> Self {
        Self {
            kind: Kind::Rendezvous,
            addr: target,
        }
    }

    /// Encodes the payload (err_code always written, as BEP 55 says).
    pub fn encode(&self) -> Vec<u8> {
        let (kind, code) = match self.kind {
            Kind::Rendezvous => (0u8, 0u32),
            Kind::Connect => (1, 0),
            Kind::Error(e) => (2, e.code()),
        };
        let mut out = Vec::with_capacity(24);
        out.push(kind);
        match self.addr.ip() {
            IpAddr::V4(ip) => {
                out.push(0);
                out.extend(ip.octets());
            }
            IpAddr::V6(ip) => {
                out.push(1);
                out.extend(ip.octets());
            }
        }
        out.extend(self.addr.port().to_be_bytes());
        out.extend(code.to_be_bytes());
        out
    }

    /// Parses a payload.
    pub fn parse(b: &[u8]) -> Result<Self, HolepunchError> {
        let (&kind, rest) = b.split_first().ok_or(HolepunchError::Short(b.len()))?;
        let (&family, rest) = rest.split_first().ok_or(HolepunchError::Short(b.len()))?;
        let ip_len = match family {
            0 => 4,
            1 => 16,
            f => return Err(HolepunchError::UnknownAddress(f)),
        };
        if rest.len() < ip_len + 2 {
            return Err(HolepunchError::Short(b.len()));
        }
        let ip: IpAddr = if ip_len == 4 {
            let mut o = [0u8; 4];
            o.copy_from_slice(&rest[..4]);
            Ipv4Addr::from(o).into()
        } else {
            let mut o = [0u8; 16];
            o.copy_from_slice(&rest[..16]);
            Ipv6Addr::from(o).into()
        };
        let port = u16::from_be_bytes([rest[ip_len], rest[ip_len + 1]]);
        let code = rest
            .get(ip_len + 2..ip_len + 6)
            .map_or(0, |c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
        let kind = match kind {
            0 => Kind::Rendezvous,
            1 => Kind::Connect,
            2 if code == 0 => return Err(HolepunchError::NoCode),
            2 => Kind::Error(PunchError::from_code(code)),
            k => return Err(HolepunchError::UnknownType(k)),
        };
        Ok(Self {
            kind,
            addr: SocketAddr::new(ip, port),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fixtures written from BEP 55's layout by hand.
    #[test]
    fn byte_fixtures() {
        let target: SocketAddr = "10.1.2.3:6881".parse().unwrap();
        assert_eq!(
            Holepunch::rendezvous(target).encode(),
            [0, 0, 10, 1, 2, 3, 0x1a, 0xe1, 0, 0, 0, 0]
        );
        let error = Holepunch {
            kind: Kind::Error(PunchError::NotConnected),
            addr: target,
        };
        assert_eq!(error.encode(), [2, 0, 10, 1, 2, 3, 0x1a, 0xe1, 0, 0, 0, 2]);
        // libtorrent's connect without err_code.
        let connect = Holepunch::parse(&[1, 0, 10, 1, 2, 3, 0x1a, 0xe1]).unwrap();
        assert_eq!(connect.kind, Kind::Connect);
        assert_eq!(connect.addr, target);
        let v6: SocketAddr = "[2001:db8::7]:51413".parse().unwrap();
        let m = Holepunch {
            kind: Kind::Connect,
            addr: v6,
        };
        let bytes = m.encode();
        assert_eq!(bytes.len(), 1 + 1 + 16 + 2 + 4);
        assert_eq!(bytes[1], 1);
        assert_eq!(Holepunch::parse(&bytes).unwrap(), m);
        for e in [1, 2, 3, 4, 77] {
            let mut b = error.encode();
            b[8..].copy_from_slice(&u32::to_be_bytes(e));
            let parsed = Holepunch::parse(&b).unwrap();
            assert_eq!(parsed.kind, Kind::Error(PunchError::from_code(e)));
            assert_eq!(PunchError::from_code(e).code(), e);
        }
    }

    #[test]
    fn hostile_payloads_are_refused() {
        assert_eq!(Holepunch::parse(&[]), Err(HolepunchError::Short(0)));
        assert_eq!(Holepunch::parse(&[0]), Err(HolepunchError::Short(1)));
        assert_eq!(
            Holepunch::parse(&[0, 0, 1, 2, 3]),
            Err(HolepunchError::Short(5))
        );
        assert_eq!(
            Holepunch::parse(&[0, 1, 1, 2, 3, 4, 5, 6]),
            Err(HolepunchError::Short(8))
        );
        assert_eq!(
            Holepunch::parse(&[0, 9, 1, 2, 3, 4, 0, 1]),
            Err(HolepunchError::UnknownAddress(9))
        );
        assert_eq!(
            Holepunch::parse(&[5, 0, 1, 2, 3, 4, 0, 1]),
            Err(HolepunchError::UnknownType(5))
        );
        assert_eq!(
            Holepunch::parse(&[2, 0, 1, 2, 3, 4, 0, 1]),
            Err(HolepunchError::NoCode)
        );
        // Trailing bytes are ignored.
        let mut long = Holepunch::rendezvous("1.2.3.4:5".parse().unwrap()).encode();
        long.extend([9; 100]);
        assert_eq!(Holepunch::parse(&long).unwrap().kind, Kind::Rendezvous);
    }
}
