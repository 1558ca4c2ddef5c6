//! The allowed range of every number in the configuration.

use std::time::Duration;

use super::Config;

fn millis(d: &[Duration]) -> Vec<u64> {
    d.iter().copied().map(crate::clock::millis).collect()
}

/// A fixed timeout's milliseconds; nothing for "auto".
fn fixed(t: super::Timeout) -> Vec<u64> {
    match t {
        super::Timeout::Auto => Vec::new(),
        super::Timeout::Fixed(d) => millis(&[d]),
    }
}

fn seconds(d: &[Duration]) -> Vec<u64> {
    d.iter().map(Duration::as_secs).collect()
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
        get: |c| millis(&[c.writer.batch_interval_ms]),
    },
    Range {
        key: "writer.max_stall_secs",
        min: 1,
        max: 604_800,
        get: |c| seconds(&[c.writer.max_stall_secs]),
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
        get: |c| seconds(&[c.monitor.status_interval_secs]),
    },
    Range {
        key: "monitor.statistics_interval_secs",
        min: 1,
        max: 86_400,
        get: |c| seconds(&[c.monitor.statistics_interval_secs]),
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
        get: |c| fixed(c.peer.connect_timeout_ms),
    },
    Range {
        key: "peer.handshake_timeout_ms",
        min: 1,
        max: 600_000,
        get: |c| fixed(c.peer.handshake_timeout_ms),
    },
    Range {
        key: "peer.silence_timeout_ms",
        min: 1,
        max: 600_000,
        get: |c| millis(&[c.peer.silence_timeout_ms]),
    },
    Range {
        key: "peer.state_window_ms",
        min: 1,
        max: 600_000,
        get: |c| millis(&[c.peer.state_window_ms]),
    },
    Range {
        key: "peer.pex_wait_ms",
        min: 0,
        max: 60_000,
        get: |c| millis(&[c.peer.pex_wait_ms]),
    },
    Range {
        key: "peer.visit_cap_ms",
        min: 1,
        max: 3_600_000,
        get: |c| millis(&[c.peer.visit_cap_ms]),
    },
    Range {
        key: "peer.auto_timeout_warmup",
        min: 1,
        max: 1_000_000,
        get: |c| vec![c.peer.auto_timeout_warmup],
    },
    Range {
        key: "peer.auto_connect_timeout_ms",
        min: 1,
        max: 600_000,
        get: |c| millis(&c.peer.auto_connect_timeout_ms),
    },
    Range {
        key: "peer.auto_handshake_timeout_ms",
        min: 1,
        max: 600_000,
        get: |c| millis(&c.peer.auto_handshake_timeout_ms),
    },
    Range {
        key: "peer.revisit_delay_secs",
        min: 1,
        max: 604_800,
        get: |c| seconds(&[c.peer.revisit_delay_secs]),
    },
    Range {
        key: "peer.min_revisit_secs",
        min: 1,
        max: 604_800,
        get: |c| seconds(&[c.peer.min_revisit_secs]),
    },
    Range {
        key: "peer.first_revisit_secs",
        min: 1,
        max: 604_800,
        get: |c| seconds(&[c.peer.first_revisit_secs]),
    },
    Range {
        key: "peer.silent_retries",
        min: 0,
        max: 100,
        get: |c| vec![u64::from(c.peer.silent_retries)],
    },
    Range {
        key: "peer.silent_workers_percent",
        min: 1,
        max: 100,
        get: |c| vec![u64::from(c.peer.silent_workers_percent)],
    },
    Range {
        key: "peer.transient_retry_secs",
        min: 1,
        max: 604_800,
        get: |c| seconds(&[c.peer.transient_retry_secs]),
    },
    Range {
        key: "peer.retry_backoff_secs",
        min: 1,
        max: 604_800,
        get: |c| seconds(&c.peer.retry_backoff_secs),
    },
    Range {
        key: "peer.drop_cooldown_secs",
        min: 0,
        max: 31_536_000,
        get: |c| seconds(&[c.peer.drop_cooldown_secs]),
    },
    Range {
        key: "peer.max_message_bytes",
        min: 16 * 1024 + 13,
        max: 1 << 30,
        get: |c| vec![u64::from(c.peer.max_message_bytes)],
    },
    Range {
        key: "peer.incoming_handlers",
        min: 0,
        max: 16_384,
        get: |c| vec![c.peer.incoming_handlers as u64],
    },
    Range {
        key: "peer.max_peers_per_ip",
        min: 1,
        max: 65_535,
        get: |c| vec![c.peer.max_peers_per_ip as u64],
    },
    Range {
        key: "peer.max_handshakes_per_ip",
        min: 1,
        max: 65_535,
        get: |c| vec![c.peer.max_handshakes_per_ip as u64],
    },
    Range {
        key: "peer.max_peers_per_source",
        min: 1,
        max: 100_000_000,
        get: |c| vec![u64::from(c.peer.max_peers_per_source)],
    },
    Range {
        key: "peer.new_dials_per_sec",
        min: 0,
        max: 1_000_000,
        get: |c| vec![u64::from(c.peer.new_dials_per_sec)],
    },
    Range {
        key: "peer.new_dials_per_network_per_sec",
        min: 0,
        max: 1_000_000,
        get: |c| vec![u64::from(c.peer.new_dials_per_network_per_sec)],
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
        get: |c| seconds(&[c.peer.metadata_fetch_secs]),
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
        get: |c| seconds(&[c.tracker.interval_secs]),
    },
    Range {
        key: "tracker.max_min_interval_secs",
        min: 0,
        max: 604_800,
        get: |c| seconds(&[c.tracker.max_min_interval_secs]),
    },
    Range {
        key: "tracker.retry_backoff_secs",
        min: 1,
        max: 604_800,
        get: |c| seconds(&c.tracker.retry_backoff_secs),
    },
    Range {
        key: "tracker.scrape_interval_secs",
        min: 1,
        max: 604_800,
        get: |c| seconds(&[c.tracker.scrape_interval_secs]),
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
        get: |c| millis(&[c.tracker.http_timeout_ms]),
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
        get: |c| millis(&c.tracker.udp_retransmit_ms),
    },
    Range {
        key: "tracker.dns_timeout_ms",
        min: 1,
        max: 600_000,
        get: |c| millis(&[c.tracker.dns_timeout_ms]),
    },
    Range {
        key: "tracker.stopped_timeout_ms",
        min: 1,
        max: 600_000,
        get: |c| millis(&[c.tracker.stopped_timeout_ms]),
    },
    Range {
        key: "dht.interval_secs",
        min: 1,
        max: 604_800,
        get: |c| seconds(&[c.dht.interval_secs]),
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
        get: |c| millis(&[c.dht.query_timeout_ms]),
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
        get: |c| millis(&[c.geo.rdns_timeout_ms]),
    },
];
