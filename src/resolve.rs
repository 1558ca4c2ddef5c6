//! Host-name resolution with a timeout, for every part that names hosts (tracker URLs,
//! DHT bootstrap nodes). The system resolver cannot be cancelled, so it runs on a helper
//! thread and a hanging lookup costs the caller at most the timeout.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::time::Duration;

/// Why a name did not resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ResolveError {
    /// No answer within the timeout.
    #[error("timeout")]
    Timeout,
    /// The resolver answered with no address.
    #[error("no address")]
    NoAddress,
    /// The resolver failed (unknown name and the like).
    #[error("{0}")]
    Failed(String),
    /// The helper thread could not be started.
    #[error("cannot start a resolver thread: {0}")]
    Thread(String),
}

/// The addresses of `host:port`; an IP literal (IPv6 with or without brackets) is
/// returned as it is, without asking the resolver.
pub(crate) fn resolve(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, ResolveError> {
    if let Ok(ip) = host
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<std::net::IpAddr>()
    {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = mpsc::channel();
    let name = format!("{host}:{port}");
    std::thread::Builder::new()
        .name("dns".into())
        .spawn(move || {
            let _ = tx.send(name.to_socket_addrs().map(Iterator::collect::<Vec<_>>));
        })
        .map_err(|e| ResolveError::Thread(e.to_string()))?;
    match rx.recv_timeout(timeout) {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        Ok(Ok(_)) => Err(ResolveError::NoAddress),
        Ok(Err(e)) => Err(ResolveError::Failed(e.to_string())),
        Err(_) => Err(ResolveError::Timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_need_no_resolver_and_empty_names_fail() {
        let t = Duration::from_secs(1);
        assert_eq!(
            resolve("127.0.0.9", 80, t).unwrap(),
            vec!["127.0.0.9:80".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            resolve("[::1]", 81, t).unwrap(),
            vec!["[::1]:81".parse::<SocketAddr>().unwrap()]
        );
        assert!(resolve("", 80, t).is_err());
    }
}
