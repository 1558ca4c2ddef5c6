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
        // (60 s) run out and `bind` fails (`local_error`). IP_BIND_ADDRESS_NO_PORT
        // (Linux 4.2) leaves the port to `connect`, which may share it between
        // connections to different peers (unique by their four-tuple); without it
        // `bind` searched the ports held in TIME_WAIT for a free one, half of btda's
        // CPU at 2,000 dials a second. SO_REUSEADDR stays for kernels without it: the
        // kernel may then hand out a port whose earlier connections are in TIME_WAIT.
        socket.set_reuse_address(true)?;
        let _ = nix::sys::socket::setsockopt(
            &socket,
            nix::sys::socket::sockopt::IpBindAddressNoPort,
            &true,
        );
        socket.bind(&SockAddr::from(SocketAddr::new(ip, 0)))?;
    }
    if stop.requested() {
        return Err(io::Error::new(io::ErrorKind::Interrupted, "stopping"));
    }
    socket.connect_timeout(&SockAddr::from(addr), timeout)?;
    socket.set_tcp_nodelay(true)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connect_from_a_source_address_leaves_the_port_to_connect() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let to = listener.local_addr().unwrap();
        let source = std::net::IpAddr::from([127, 0, 0, 3]);
        let stream = connect(to, Duration::from_secs(2), Some(source), &Shutdown::new()).unwrap();
        assert_eq!(stream.local_addr().unwrap().ip(), source);
        let no_port =
            nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::IpBindAddressNoPort);
        assert_eq!(no_port, Ok(true));
    }
}
