//! Settings converted once: the typed configuration ([`crate::config::Config`]) turned
//! into each room's own small settings at start-up. The rooms below `run` import their
//! settings, never the configuration; every conversion is here.

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::{self, Timeout};
use crate::dht::node::NodeSettings;
use crate::dht::service::{DhtSettings, has_global_ipv6};
use crate::peer::Timeouts;
use crate::peer::engine::EngineSettings;
use crate::peer::measured::{MeasuredTimeouts, Rule};
use crate::schedule::Policy;
use crate::store::WriterSettings;
use crate::tracker::client::ClientSettings;
use crate::tracker::service::TrackerSettings;

impl From<&config::Writer> for WriterSettings {
    fn from(w: &config::Writer) -> Self {
        Self {
            channel_capacity: w.channel_capacity,
            batch_records: w.batch_records,
            batch_interval: w.batch_interval_ms,
            max_stall: w.max_stall_secs,
            max_page_count: w.max_page_count,
        }
    }
}

/// A fixed timeout, or the upper bound of an "auto" one (what applies before any
/// measurement; [`MeasuredTimeouts`] replaces it per visit).
fn fixed_or_max(t: Timeout, bounds: &[Duration]) -> Duration {
    match t {
        Timeout::Fixed(d) => d,
        Timeout::Auto => bounds.last().copied().unwrap_or(Duration::from_secs(5)),
    }
}

impl Timeouts {
    /// From `[peer]`.
    pub fn from_config(p: &config::Peer) -> Self {
        Self {
            connect: fixed_or_max(p.connect_timeout_ms, &p.auto_connect_timeout_ms),
            handshake: fixed_or_max(p.handshake_timeout_ms, &p.auto_handshake_timeout_ms),
            silence: p.silence_timeout_ms,
            state_window: p.state_window_ms,
            cap: p.visit_cap_ms,
            // Only with predictive revisits: a minimum as long as the fixed delay is
            // the old cadence, which never stayed.
            watch: if p.min_revisit_secs < p.revisit_delay_secs {
                p.min_revisit_secs
            } else {
                Duration::ZERO
            },
            pex_wait: p.pex_wait_ms,
        }
    }
}

/// How the connect and the handshake timeout are chosen: measured within their
/// bounds ("auto"), or fixed.
/// `percent` of `workers`, rounded up, at least one: the workers that visits to silent
/// addresses may hold at once.
fn silent_slots(workers: usize, percent: u32) -> u32 {
    let slots = (workers as u64 * u64::from(percent)).div_ceil(100).max(1);
    u32::try_from(slots).unwrap_or(u32::MAX)
}

fn timeout_rules(p: &config::Peer) -> (Rule, Rule) {
    let rule = |t: Timeout, bounds: &[Duration]| match t {
        Timeout::Fixed(d) => Rule::Fixed(d),
        Timeout::Auto => Rule::Auto {
            percentile: p.auto_timeout_percentile,
            factor: p.auto_timeout_factor,
            min: bounds.first().copied().unwrap_or(Duration::from_secs(1)),
            max: bounds.last().copied().unwrap_or(Duration::from_secs(5)),
            warmup: p.auto_timeout_warmup,
        },
    };
    (
        rule(p.connect_timeout_ms, &p.auto_connect_timeout_ms),
        rule(p.handshake_timeout_ms, &p.auto_handshake_timeout_ms),
    )
}

impl MeasuredTimeouts {
    /// From `[peer]`.
    pub fn from_config(p: &config::Peer) -> Self {
        let (connect, handshake) = timeout_rules(p);
        Self::new(connect, handshake)
    }
}

impl Policy {
    /// From `[peer]`.
    pub fn from_config(p: &config::Peer) -> Self {
        Self {
            revisit_delay: p.revisit_delay_secs,
            // The fixed delay stays the upper bound: a shorter one (tests) caps the minimum.
            min_revisit: p.min_revisit_secs.min(p.revisit_delay_secs),
            // Between the two (the old cadence, minimum = fixed delay, keeps it fixed).
            first_revisit: p
                .first_revisit_secs
                .min(p.revisit_delay_secs)
                .max(p.min_revisit_secs.min(p.revisit_delay_secs)),
            // Never later than the first backoff step it stands in for.
            transient_retry: p
                .retry_backoff_secs
                .first()
                .map_or(p.transient_retry_secs, |&b| p.transient_retry_secs.min(b)),
            backoff: p.retry_backoff_secs.clone(),
            silent_retries: p.silent_retries,
            silent_slots: silent_slots(p.workers, p.silent_workers_percent),
            cooldown: p.drop_cooldown_secs,
        }
    }
}

impl From<&config::Peer> for EngineSettings {
    fn from(p: &config::Peer) -> Self {
        let (connect_rule, handshake_rule) = timeout_rules(p);
        Self {
            listen_port: p.listen_port,
            max_message: p.max_message_bytes,
            source_ip: p.source_ip(),
            timeouts: Timeouts::from_config(p),
            connect_rule,
            handshake_rule,
            encryption: p.encryption,
            max_handshakes_per_ip: p.max_handshakes_per_ip,
            max_open_per_ip: p.max_peers_per_ip,
            transport: p.transport,
            utp_bind: SocketAddr::new(p.listen_address, p.listen_port),
        }
    }
}

/// The tracker client's settings from `[tracker]` (the source address is the peer
/// engine's, set by the tracker loop).
pub fn tracker_client(c: &config::Tracker) -> ClientSettings {
    ClientSettings {
        http_timeout: c.http_timeout_ms,
        max_redirects: c.max_redirects,
        max_body: c.max_response_bytes,
        udp_retransmit: c.udp_retransmit_ms.clone(),
        dns_timeout: c.dns_timeout_ms,
        source_ip: None,
        extra_roots: extra_roots(c),
    }
}

/// The roots of `tracker.ca_file` (checked when the run starts, so a failure here is
/// only logged).
fn extra_roots(c: &config::Tracker) -> Vec<Vec<u8>> {
    if c.ca_file.is_empty() {
        return Vec::new();
    }
    crate::tracker::tls::load_roots(std::path::Path::new(&c.ca_file)).unwrap_or_else(|why| {
        log::error!("tracker.ca_file {}: {why}", c.ca_file);
        Vec::new()
    })
}

impl From<&config::Tracker> for TrackerSettings {
    fn from(c: &config::Tracker) -> Self {
        Self {
            threads: c.threads,
            interval: c.interval_secs,
            max_min_interval: c.max_min_interval_secs,
            scrape_interval: c.scrape_interval_secs,
            retry_backoff: c.retry_backoff_secs.clone(),
            numwant: c.numwant,
            left_share: c.left_share,
            uploaded_share: c.uploaded_share,
            stopped_timeout: c.stopped_timeout_ms,
            client: tracker_client(c),
        }
    }
}

impl From<&config::Dht> for DhtSettings {
    /// The IPv6 node runs with `ipv6 = "on"`, or with "auto" on a host with a global
    /// IPv6 address (decided here, once).
    fn from(c: &config::Dht) -> Self {
        let mut listen = vec![SocketAddr::new(c.listen_address, c.port)];
        let ipv6 = match c.ipv6 {
            config::Ipv6Dht::On => true,
            config::Ipv6Dht::Off => false,
            config::Ipv6Dht::Auto => has_global_ipv6(),
        };
        if ipv6 {
            listen.push(SocketAddr::new(c.ipv6_listen_address, c.port));
        }
        Self {
            node: NodeSettings {
                alpha: c.alpha,
                query_timeout: c.query_timeout_ms,
                max_queries: c.max_queries,
                rate_per_sec: c.rate_per_sec,
            },
            listen,
            bootstrap: c.bootstrap.clone(),
            interval: c.interval_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_policy_is_the_documented_configuration() {
        assert_eq!(
            Policy::from_config(&config::Peer::default()),
            Policy::default()
        );
    }

    #[test]
    fn silent_slots_are_a_share_of_the_workers_rounded_up() {
        assert_eq!(silent_slots(1024, 25), 256);
        assert_eq!(silent_slots(10, 25), 3);
        assert_eq!(silent_slots(1, 1), 1);
        assert_eq!(
            silent_slots(0, 50),
            1,
            "never none: silent addresses still get retried"
        );
    }

    #[test]
    fn dht_families_follow_the_ipv6_setting() {
        let off = config::Dht {
            ipv6: config::Ipv6Dht::Off,
            ..config::Dht::default()
        };
        assert_eq!(DhtSettings::from(&off).listen.len(), 1);
        let on = config::Dht {
            ipv6: config::Ipv6Dht::On,
            ..config::Dht::default()
        };
        let listen = DhtSettings::from(&on).listen;
        assert_eq!(listen.len(), 2);
        assert!(listen[1].is_ipv6());
    }
}
