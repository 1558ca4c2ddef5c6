//! Reverse DNS of peers (the 2015 tool's second ISP source): optional, once per peer, in
//! its own small pool with a timeout and a rate limit, never on a worker's or the
//! writer's path. Only the registrable part of the name is kept (`comcast.net`,
//! `example.com.br`), never the host name, which often encodes the address.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

/// Second-level labels under which ccTLDs register names (`co.uk`, `com.br`, …).
const SECOND_LEVEL: &[&str] = &[
    "ac", "co", "com", "edu", "go", "gob", "gov", "ne", "net", "nic", "or", "org",
];

/// The registrable domain of a host name: the last two labels, or three when the
/// second-to-last is a generic second level under a two-letter country code.
pub(crate) fn registrable(host: &str) -> Option<String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.parse::<IpAddr>().is_ok() || !host.contains('.') {
        return None;
    }
    let labels: Vec<&str> = host.split('.').filter(|l| !l.is_empty()).collect();
    let n = labels.len();
    let take = if n >= 3 && labels[n - 1].len() == 2 && SECOND_LEVEL.contains(&labels[n - 2]) {
        3
    } else {
        2
    };
    (n >= take).then(|| labels[n - take..].join("."))
}

/// Resolves an address to a host name (the system resolver, or a stand-in in tests).
pub(crate) type Resolver = Arc<dyn Fn(IpAddr) -> Option<String> + Send + Sync>;

/// The system resolver (`getnameinfo`).
pub(crate) fn system_resolver() -> Resolver {
    Arc::new(|ip| dns_lookup::lookup_addr(&ip).ok())
}

/// The sending side of a pool of resolver threads fed by a bounded queue. Requests
/// beyond the queue are dropped, never waited for.
pub(crate) struct RdnsPool<T: Send + 'static> {
    tx: SyncSender<(T, IpAddr)>,
}

/// Answers of the pool: the caller's tag and the registrable domain, if any.
pub(crate) type RdnsResults<T> = Receiver<(T, Option<String>)>;

impl<T: Send + 'static> RdnsPool<T> {
    /// Starts `threads` resolver threads; each lookup may take at most `timeout`, and at
    /// most `per_sec` lookups start per second in all. The threads end when the pool and
    /// the results receiver are dropped.
    pub(crate) fn start(
        resolver: Resolver,
        threads: usize,
        per_sec: u32,
        timeout: Duration,
    ) -> (Self, RdnsResults<T>) {
        let (tx, rx) = sync_channel::<(T, IpAddr)>(1024);
        let (out_tx, results) = std::sync::mpsc::channel();
        let rx = Arc::new(parking_lot::Mutex::new(rx));
        let gap = Duration::from_secs(1) / per_sec.max(1);
        let next = Arc::new(parking_lot::Mutex::new(Instant::now()));
        for i in 0..threads.max(1) {
            let (rx, out_tx, resolver, next) = (
                Arc::clone(&rx),
                out_tx.clone(),
                Arc::clone(&resolver),
                Arc::clone(&next),
            );
            let _ = std::thread::Builder::new()
                .name(format!("rdns-{i}"))
                .spawn(move || {
                    loop {
                        let Ok((tag, ip)) = rx.lock().recv() else {
                            return;
                        };
                        let wait = {
                            let mut n = next.lock();
                            let at = (*n).max(Instant::now());
                            *n = at + gap;
                            at.saturating_duration_since(Instant::now())
                        };
                        std::thread::sleep(wait);
                        // The lookup runs on a helper so a hanging resolver costs `timeout`.
                        let (htx, hrx) = sync_channel(1);
                        let r = Arc::clone(&resolver);
                        let _ = std::thread::Builder::new()
                            .name("rdns-lookup".into())
                            .spawn(move || {
                                let _ = htx.send(r(ip));
                            });
                        let domain = hrx
                            .recv_timeout(timeout)
                            .ok()
                            .flatten()
                            .and_then(|h| registrable(&h));
                        if out_tx.send((tag, domain)).is_err() {
                            return;
                        }
                    }
                });
        }
        (Self { tx }, results)
    }

    /// Queues a lookup; false if the queue is full (the peer then has no domain).
    pub(crate) fn request(&self, tag: T, ip: IpAddr) -> bool {
        self.tx.try_send((tag, ip)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrable_domains() {
        assert_eq!(
            registrable("c-73-1-2-3.hsd1.ca.comcast.net.").as_deref(),
            Some("comcast.net")
        );
        assert_eq!(
            registrable("200-100-1-2.dsl.telesp.com.br").as_deref(),
            Some("telesp.com.br")
        );
        assert_eq!(
            registrable("host86-1.range86-2.btcentralplus.co.uk").as_deref(),
            Some("btcentralplus.co.uk")
        );
        assert_eq!(
            registrable("p5b0c1d2e.dip0.t-ipconnect.de").as_deref(),
            Some("t-ipconnect.de")
        );
        assert_eq!(registrable("localhost"), None);
        assert_eq!(registrable("192.0.2.1"), None);
    }

    #[test]
    fn pool_resolves_with_timeout_and_keeps_only_the_domain() {
        let resolver: Resolver = Arc::new(|ip: IpAddr| match ip.to_string().as_str() {
            "192.0.2.1" => Some("dsl-192-0-2-1.dyn.example.com.br".to_string()),
            "192.0.2.2" => {
                std::thread::sleep(Duration::from_secs(3)); // a hanging resolver
                Some("late.example.net".to_string())
            }
            _ => None,
        });
        let (pool, results) = RdnsPool::start(resolver, 2, 100, Duration::from_millis(300));
        for (tag, ip) in [(1, "192.0.2.1"), (2, "192.0.2.2"), (3, "192.0.2.3")] {
            assert!(pool.request(tag, ip.parse().unwrap()));
        }
        let start = Instant::now();
        let mut got: Vec<(i32, Option<String>)> = (0..3)
            .map(|_| results.recv_timeout(Duration::from_secs(2)).unwrap())
            .collect();
        got.sort();
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "the hanging lookup was cut off"
        );
        assert_eq!(
            got,
            vec![(1, Some("example.com.br".into())), (2, None), (3, None)]
        );
    }
}
