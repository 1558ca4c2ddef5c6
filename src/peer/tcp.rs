//! TCP, the first [`super::stream::Transport`]: outgoing connections with a measured
//! timeout from btda's own source address, and the check that no connection is opened
//! once a stop was requested.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::shutdown::Shutdown;

/// Connects with a timeout (socket2), so the connect time can be measured and bounded,
/// from `source` when given and of the same address family as `addr`. Once a stop is
/// requested no connection is opened: the flag is read right before `connect`, so
/// from the signal's arrival on no SYN leaves (`Interrupted`).
pub(super) fn connect(
    addr: SocketAddr,
    timeout: Duration,
    source: Option<std::net::IpAddr>,
    stop: &Shutdown,
) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if let Some(ip) = source.filter(|ip| ip.is_ipv4() == addr.is_ipv4()) {
        // Binding port 0 to a source address reserves an ephemeral port for the socket
        // alone, so at a few hundred connects a second the ports held in TIME_WAIT
        // (60 s) run out and `bind` fails (`local_error`). With SO_REUSEADDR the
        // kernel may hand out a port whose earlier connections are in TIME_WAIT; the
        // connection itself is still unique by its four-tuple.
        socket.set_reuse_address(true)?;
        socket.bind(&SockAddr::from(SocketAddr::new(ip, 0)))?;
    }
    if stop.requested() {
        return Err(io::Error::new(io::ErrorKind::Interrupted, "stopping"));
    }
    socket.connect_timeout(&SockAddr::from(addr), timeout)?;
    socket.set_tcp_nodelay(true)?;
    Ok(socket.into())
}
