//! Trackers: HTTP and UDP announce and scrape for every tracker URL of every torrent.

pub mod client;
mod http;
pub mod service;
pub mod tls;
mod udp;

use std::net::SocketAddr;

use crate::torrent::InfoHash;

/// The `event` of an announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A regular announce.
    None,
    /// The first announce of a run.
    Started,
    /// At shutdown.
    Stopped,
}

impl Event {
    /// The HTTP `event` value (none for a regular announce).
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::Started => Some("started"),
            Self::Stopped => Some("stopped"),
        }
    }

    /// The BEP 15 event code.
    pub(crate) fn udp_code(self) -> u32 {
        match self {
            Self::None => 0,
            Self::Started => 2,
            Self::Stopped => 3,
        }
    }
}

/// What btda tells a tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnounceParams {
    /// The torrent.
    pub info_hash: InfoHash,
    /// Our peer id.
    pub peer_id: [u8; 20],
    /// Our listen port.
    pub port: u16,
    /// Bytes uploaded (a configured share of the torrent size).
    pub uploaded: u64,
    /// Bytes downloaded (size − left).
    pub downloaded: u64,
    /// Bytes left (a configured share of the size, so seeders and leechers talk to us).
    pub left: u64,
    /// Peers wanted.
    pub numwant: u32,
    /// Random key, one per run.
    pub key: u32,
    /// The event.
    pub event: Event,
}

/// A tracker's answer to an announce.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnnounceReply {
    /// Seconds until the next regular announce.
    pub interval: Option<u64>,
    /// Seconds the tracker asks us to wait at least.
    pub min_interval: Option<u64>,
    /// Seeders (`complete`).
    pub seeders: Option<u32>,
    /// Leechers (`incomplete`).
    pub leechers: Option<u32>,
    /// Completed downloads (`downloaded`), if the tracker says.
    pub completed: Option<u32>,
    /// Peers.
    pub peers: Vec<SocketAddr>,
    /// `warning message`.
    pub warning: Option<String>,
    /// BEP 24 `external ip`: our address as the tracker sees it.
    pub external_ip: Option<std::net::IpAddr>,
    /// Peers beyond the cap of 2,000 per reply (a bound against hostile trackers): not
    /// kept, counted in the `request` row.
    pub dropped_peers: u32,
}

/// Keeps at most `max` of `peers` (port 0 is not a peer); returns how many were
/// dropped beyond the cap.
pub(crate) fn cap_peers(peers: &mut Vec<std::net::SocketAddr>, max: usize) -> u32 {
    peers.retain(|p| p.port() != 0);
    let dropped = peers.len().saturating_sub(max);
    peers.truncate(max);
    u32::try_from(dropped).unwrap_or(u32::MAX)
}

/// What a scrape returned: counts for each torrent the tracker knew, and the BEP 48
/// `flags.min_request_interval` when it gave one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScrapeReply {
    /// Counts per info-hash asked for and known.
    pub counts: Vec<(crate::torrent::InfoHash, ScrapeCounts)>,
    /// Seconds the tracker wants between scrapes.
    pub min_request_interval: Option<u64>,
}

/// A tracker's counts for one torrent in a scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScrapeCounts {
    /// Seeders.
    pub seeders: Option<u32>,
    /// Leechers.
    pub leechers: Option<u32>,
    /// Completed downloads.
    pub completed: Option<u32>,
}

/// Classified tracker errors; [`TrackerError::class`] is stored in `request.error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackerError {
    /// No answer in time.
    #[error("timeout")]
    Timeout,
    /// Connection refused (or ICMP port unreachable for UDP).
    #[error("refused")]
    Refused,
    /// The host name did not resolve (or not in time).
    #[error("dns: {0}")]
    Dns(String),
    /// An HTTP status other than 200.
    #[error("http status {0}")]
    HttpStatus(u16),
    /// The tracker's own failure reason (or a BEP 15 error).
    #[error("tracker failure: {0}")]
    Failure(String),
    /// A response that is not what the protocol says.
    #[error("malformed response: {0}")]
    Malformed(String),
    /// Too many redirects, a redirect loop, an unsupported scheme.
    #[error("redirect: {0}")]
    Redirect(String),
    /// Any other I/O error.
    #[error("io: {0}")]
    Io(String),
    /// The TLS handshake of an `https://` tracker failed: a certificate not signed by a
    /// trusted root (`tracker.ca_file` adds roots), not valid for the host, expired.
    #[error("tls: {0}")]
    Tls(String),
}

impl TrackerError {
    /// The text stored in `request.error`: the class, then the detail.
    pub fn class(&self) -> String {
        self.to_string()
    }
}
