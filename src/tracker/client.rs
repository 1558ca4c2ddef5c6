//! Blocking tracker clients: DNS with a timeout, HTTP over attohttpc with a capped body
//! and few redirects, UDP over socket2 with a bounded retransmission schedule and a
//! cached connection id.

use std::collections::HashMap;
use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{AnnounceParams, AnnounceReply, ScrapeReply, TrackerError, http, udp};
use crate::torrent::InfoHash;

/// How long a UDP connection id may be used (BEP 15: one minute).
const CONNECTION_ID_LIFETIME: Duration = Duration::from_secs(60);

/// Timeouts and limits of tracker requests (from `[tracker]`).
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Whole HTTP request.
    pub http_timeout: Duration,
    /// Redirects followed at most.
    pub max_redirects: u32,
    /// Largest response body read.
    pub max_body: usize,
    /// Waits before each UDP retransmission; after the last, a timeout.
    pub udp_retransmit: Vec<Duration>,
    /// Host name resolution.
    pub dns_timeout: Duration,
    /// Source address of UDP requests (used when its family matches the tracker's).
    pub source_ip: Option<std::net::IpAddr>,
    /// Root certificates trusted for `https://` trackers besides the built-in ones
    /// (DER; from `tracker.ca_file`).
    pub extra_roots: Vec<Vec<u8>>,
}

/// Resolves `host:port` within `timeout` ([`crate::resolve`]), as a tracker error.
pub(crate) fn resolve(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, TrackerError> {
    crate::resolve::resolve(host, port, timeout).map_err(|e| match e {
        crate::resolve::ResolveError::Thread(why) => TrackerError::Io(why),
        other => TrackerError::Dns(other.to_string()),
    })
}

fn io_error(e: &std::io::Error) -> TrackerError {
    use std::io::ErrorKind as K;
    if let Some(why) = super::tls::tls_error(e) {
        return TrackerError::Tls(why);
    }
    match e.kind() {
        K::TimedOut | K::WouldBlock => TrackerError::Timeout,
        K::ConnectionRefused => TrackerError::Refused,
        _ => TrackerError::Io(e.to_string()),
    }
}

/// Tracker requests, shared by the tracker threads.
pub struct TrackerClient {
    settings: ClientSettings,
    connection_ids: Mutex<HashMap<SocketAddr, (u64, Instant)>>,
}

impl TrackerClient {
    /// Its settings.
    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// A client with these settings.
    pub fn new(settings: ClientSettings) -> Self {
        Self {
            settings,
            connection_ids: Mutex::new(HashMap::new()),
        }
    }

    /// Announces to an `http://`, `https://` or `udp://` tracker.
    pub fn announce(&self, url: &str, p: &AnnounceParams) -> Result<AnnounceReply, TrackerError> {
        if url.starts_with("udp://") {
            let (addr, v6) = self.udp_target(url)?;
            let reply = self.udp_exchange(
                addr,
                |cid, tx| udp::announce_request(cid, tx, p),
                |b, tx| udp::parse_announce(b, tx, v6),
            )?;
            Ok(reply)
        } else {
            let body = self.http_get(&http::announce_url(url, p))?;
            http::parse_announce(&body)
        }
    }

    /// Scrapes `hashes` (all of one tracker); the result holds the hashes it knew
    /// and, over HTTP, the tracker's BEP 48 `min_request_interval` (the longest given
    /// when several requests were needed). `Ok(None)` means the tracker does not
    /// support scrape (BEP 48).
    pub fn scrape(
        &self,
        url: &str,
        hashes: &[InfoHash],
    ) -> Result<Option<ScrapeReply>, TrackerError> {
        let mut all = ScrapeReply::default();
        if url.starts_with("udp://") {
            let (addr, _) = self.udp_target(url)?;
            for chunk in hashes.chunks(udp::MAX_SCRAPE) {
                all.counts.extend(self.udp_exchange(
                    addr,
                    |cid, tx| udp::scrape_request(cid, tx, chunk),
                    |b, tx| udp::parse_scrape(b, tx, chunk),
                )?);
            }
            return Ok(Some(all));
        }
        let Some(scrape) = http::scrape_url(url) else {
            return Ok(None);
        };
        for chunk in hashes.chunks(50) {
            let body = self.http_get(&http::scrape_url_for(&scrape, chunk))?;
            let reply = http::parse_scrape(&body, chunk)?;
            all.counts.extend(reply.counts);
            all.min_request_interval = all.min_request_interval.max(reply.min_request_interval);
        }
        Ok(Some(all))
    }

    fn http_get(&self, url: &str) -> Result<Vec<u8>, TrackerError> {
        let parsed =
            url::Url::parse(url).map_err(|e| TrackerError::Malformed(format!("bad url: {e}")))?;
        let host = parsed
            .host_str()
            .ok_or_else(|| TrackerError::Malformed("url without host".into()))?;
        resolve(
            host,
            parsed.port_or_known_default().unwrap_or(80),
            self.settings.dns_timeout,
        )?;
        let s = &self.settings;
        let request = attohttpc::get(url);
        #[cfg(feature = "https")]
        let request = webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .cloned()
            .chain(
                s.extra_roots
                    .iter()
                    .map(|der| rustls::pki_types::CertificateDer::from(der.clone())),
            )
            .fold(request, attohttpc::RequestBuilder::add_root_certificate);
        let response = request
            .timeout(s.http_timeout)
            .connect_timeout(s.http_timeout)
            .read_timeout(s.http_timeout)
            .max_redirections(s.max_redirects)
            .header("User-Agent", concat!("btda/", env!("CARGO_PKG_VERSION")))
            .send()
            .map_err(|e| match e.kind() {
                attohttpc::ErrorKind::Io(io) => io_error(io),
                attohttpc::ErrorKind::ConnectError { .. } => TrackerError::Refused,
                attohttpc::ErrorKind::TooManyRedirections => {
                    TrackerError::Redirect("too many redirects".into())
                }
                attohttpc::ErrorKind::InvalidBaseUrl
                | attohttpc::ErrorKind::InvalidUrlHost
                | attohttpc::ErrorKind::InvalidUrlPort => TrackerError::Redirect(e.to_string()),
                attohttpc::ErrorKind::TlsDisabled => {
                    TrackerError::Tls("https trackers need the `https` feature".into())
                }
                #[cfg(feature = "https")]
                attohttpc::ErrorKind::Tls(e) => TrackerError::Tls(e.to_string()),
                #[cfg(feature = "https")]
                attohttpc::ErrorKind::InvalidDNSName(name) => {
                    TrackerError::Tls(format!("not a valid TLS server name: {name}"))
                }
                _ => TrackerError::Malformed(e.to_string()),
            })?;
        let (status, _, reader) = response.split();
        if status.as_u16() != 200 {
            return Err(TrackerError::HttpStatus(status.as_u16()));
        }
        let mut body = Vec::new();
        reader
            .take(s.max_body as u64 + 1)
            .read_to_end(&mut body)
            .map_err(|e| io_error(&e))?;
        if body.len() > s.max_body {
            return Err(TrackerError::Malformed(format!(
                "body over {} bytes",
                s.max_body
            )));
        }
        Ok(body)
    }

    fn udp_target(&self, url: &str) -> Result<(SocketAddr, bool), TrackerError> {
        let parsed =
            url::Url::parse(url).map_err(|e| TrackerError::Malformed(format!("bad url: {e}")))?;
        let host = parsed
            .host_str()
            .ok_or_else(|| TrackerError::Malformed("url without host".into()))?;
        let port = parsed
            .port()
            .ok_or_else(|| TrackerError::Malformed("udp url without port".into()))?;
        let addr = resolve(host, port, self.settings.dns_timeout)?[0];
        Ok((addr, addr.is_ipv6()))
    }

    /// Connects if needed (cached id), then sends `build(connection_id, txid)` and waits
    /// for a packet `parse` accepts, retransmitting on the configured schedule.
    fn udp_exchange<T>(
        &self,
        addr: SocketAddr,
        build: impl Fn(u64, u32) -> Vec<u8>,
        parse: impl Fn(&[u8], u32) -> Result<Option<T>, TrackerError>,
    ) -> Result<T, TrackerError> {
        let bind = match self.settings.source_ip {
            Some(ip) if ip.is_ipv6() == addr.is_ipv6() => SocketAddr::new(ip, 0),
            _ if addr.is_ipv6() => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
            _ => SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0)),
        };
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )
        .map_err(|e| io_error(&e))?;
        socket.bind(&bind.into()).map_err(|e| io_error(&e))?;
        socket.connect(&addr.into()).map_err(|e| io_error(&e))?; // so ICMP errors surface as `refused`
        let socket: UdpSocket = socket.into();
        let cached = self
            .connection_ids
            .lock()
            .get(&addr)
            .filter(|(_, at)| at.elapsed() < CONNECTION_ID_LIFETIME)
            .map(|(id, _)| *id);
        let connection_id = if let Some(id) = cached {
            id
        } else {
            let id = self.udp_round(
                &socket,
                |tx| udp::connect_request(tx).to_vec(),
                udp::parse_connect,
            )?;
            self.connection_ids
                .lock()
                .insert(addr, (id, Instant::now()));
            id
        };
        let result = self.udp_round(&socket, |tx| build(connection_id, tx), &parse);
        if result.is_err() {
            self.connection_ids.lock().remove(&addr); // a stale id is one cause; reconnect next time
        }
        result
    }

    fn udp_round<T>(
        &self,
        socket: &UdpSocket,
        build: impl Fn(u32) -> Vec<u8>,
        parse: impl Fn(&[u8], u32) -> Result<Option<T>, TrackerError>,
    ) -> Result<T, TrackerError> {
        let txid: u32 = rand::random();
        let packet = build(txid);
        let mut buf = vec![0u8; 64 * 1024];
        for wait in &self.settings.udp_retransmit {
            socket.send(&packet).map_err(|e| io_error(&e))?;
            let deadline = Instant::now() + *wait;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                socket
                    .set_read_timeout(Some(left))
                    .map_err(|e| io_error(&e))?;
                match socket.recv(&mut buf) {
                    Ok(n) => {
                        if let Some(v) = parse(&buf[..n], txid)? {
                            return Ok(v);
                        } // another transaction: keep waiting
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        break;
                    }
                    Err(e) => return Err(io_error(&e)),
                }
            }
        }
        Err(TrackerError::Timeout)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn resolution_failures_are_their_own_class() {
        // No lookup leaves the machine: an IP literal, and a name the parser refuses.
        assert_eq!(
            super::resolve("127.0.0.9", 80, std::time::Duration::from_secs(1))
                .unwrap()
                .len(),
            1
        );
        assert!(matches!(
            super::resolve("", 80, std::time::Duration::from_secs(1)),
            Err(super::TrackerError::Dns(_))
        ));
    }
}
