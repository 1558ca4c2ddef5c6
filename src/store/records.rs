//! Typed records sent to the writer thread, one type per table.
//!
//! Ids of torrents and peers are chosen by the program (not by SQLite), so that senders
//! never wait for the writer to learn an id.

use rusqlite::{Connection, params};

/// The `run` row at start-up. There is one run per database, with id 1.
#[derive(Debug, Clone, PartialEq)]
pub struct RunStart {
    /// A random id given to the run at its start (32 hex digits): `btda merge` refuses
    /// to merge the same run twice, under any file name.
    pub run_uid: String,
    /// Unix seconds.
    pub started_at: i64,
    /// Host the run was made on.
    pub hostname: String,
    /// btda version.
    pub version: String,
    /// Effective configuration, TOML.
    pub config: String,
    /// City database description, if one is used.
    pub geo_city: Option<String>,
    /// ASN database description, if one is used.
    pub geo_asn: Option<String>,
    /// Keyed hash of a fixed address with the run's privacy key (None: a random key),
    /// so `btda merge` can tell that runs share their key without storing it.
    pub key_check: Option<String>,
}

/// A torrent taken up by the run.
#[derive(Debug, Clone, PartialEq)]
pub struct TorrentRow {
    /// Program-assigned id.
    pub id: i64,
    /// 40 lower-case hex.
    pub info_hash: String,
    /// Display name.
    pub name: String,
    /// `None` while magnet metadata is pending.
    pub pieces_count: Option<u32>,
    /// Bytes per piece.
    pub piece_size: Option<u64>,
    /// Content bytes.
    pub total_size: Option<u64>,
    /// T in pieces.
    pub complete_threshold: Option<u32>,
    /// Configured fraction.
    pub threshold: f64,
    /// `file` or `magnet`.
    pub source: &'static str,
    /// Tracker URLs, in order.
    pub trackers: Vec<String>,
    /// BEP 27 private flag.
    pub private: bool,
    /// Unix seconds.
    pub added_at: i64,
}

/// What the geolocation databases say about one address (every part optional): the
/// location columns of a `peer` row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GeoInfo {
    /// ISO 3166 country code.
    pub country: Option<String>,
    /// Continent code (EU, NA, …).
    pub continent: Option<String>,
    /// City (only kept when `geo.store_city` is on).
    pub city: Option<String>,
    /// Degrees.
    pub latitude: Option<f64>,
    /// Degrees.
    pub longitude: Option<f64>,
    /// Autonomous system number.
    pub asn: Option<u32>,
    /// Autonomous system organisation.
    pub as_org: Option<String>,
}

/// Insert-or-replace of a peer's summary (sent again after each visit).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PeerRow {
    /// Program-assigned id.
    pub id: i64,
    /// Torrent id.
    pub torrent_id: i64,
    /// Keyed hash of the address.
    pub peer_key: String,
    /// `tracker` / `dht` / `pex` / `incoming` / `manual`.
    pub source: &'static str,
    /// Client decoded from the peer id.
    pub client: Option<String>,
    /// Its version, decoded from the peer id.
    pub client_version: Option<String>,
    /// BEP 10 `v`.
    pub client_v: Option<String>,
    /// Country, continent, city, coordinates, ASN and AS organisation.
    pub geo: GeoInfo,
    /// Unix seconds of the first successful visit.
    pub first_seen: i64,
    /// Pieces at the first successful visit.
    pub first_pieces: u32,
    /// Unix seconds of the latest successful visit.
    pub last_seen: i64,
    /// Pieces at the latest successful visit.
    pub last_pieces: u32,
    /// Pieces per second.
    pub max_speed: Option<f64>,
    /// Successful visits.
    pub visits: u32,
    /// Failed visits.
    pub failed_visits: u32,
    /// Unix seconds of the crossing, for a confirmed download.
    pub crossed_at: Option<i64>,
    /// The crossing also holds under the strict rule (a below-T visit had piece state).
    pub crossed_strict: bool,
    /// How the crossing was witnessed: why the visit that saw it happened (`first`,
    /// `fixed`, `predicted`, `retry`, `incoming`).
    pub crossed_how: Option<&'static str>,
    /// Whether that visit saw the peer below T and at or above T itself.
    pub crossed_within: Option<bool>,
    /// Unix seconds at which the peer's rate predicted it would pass T, at its latest
    /// visit below T.
    pub predicted_at: Option<i64>,
    /// Successful visits the peer made by connecting in (all of them: incoming-only).
    pub visits_in: u32,
    /// /24 or /48 network, only with `privacy.store_prefix`.
    pub network: Option<String>,
    /// Registrable domain of the peer's host name, with `geo.reverse_dns`.
    pub rdns_domain: Option<String>,
}

/// One visit attempt.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VisitRow {
    /// Peer id, `None` if never identified.
    pub peer_id: Option<i64>,
    /// Torrent id.
    pub torrent_id: i64,
    /// Unix seconds.
    pub started_at: i64,
    /// 1 for the first contact with this peer, 2, 3, … after (NULL for incoming).
    pub attempt: Option<u32>,
    /// `out` or `in`.
    pub direction: &'static str,
    /// Classified outcome.
    pub outcome: &'static str,
    /// Connect time.
    pub connect_ms: Option<u32>,
    /// Handshake time.
    pub handshake_ms: Option<u32>,
    /// Whole visit.
    pub duration_ms: Option<u32>,
    /// Pieces known at the end.
    pub pieces: Option<u32>,
    /// Pieces known at the first valid piece-state message (the visit's first
    /// observation).
    pub first_pieces: Option<u32>,
    /// When that first piece-state message came, ms after the visit started.
    pub first_state_ms: Option<u32>,
    /// `bitfield` / `have_all` / `have_none` / `haves` / `none` / `invalid`.
    pub state: Option<&'static str>,
    /// Messages received.
    pub messages: Option<u32>,
    /// Longest silence between messages.
    pub max_gap_ms: Option<u32>,
    /// Piece-state messages ignored as invalid (bad bitfield, have out of range).
    pub invalid_messages: Option<u32>,
    /// `rc4` / `plaintext`: MSE and what the peers chose; `None`: no MSE.
    pub encryption: Option<&'static str>,
    /// Plaintext was refused in this visit and MSE reached the peer.
    pub fallback: bool,
    /// Why the visit happened: `first`, `fixed`, `predicted`, `retry`, `incoming`.
    pub reason: Option<&'static str>,
    /// `tcp` / `utp`: what carried the connection, once one was made.
    pub transport: Option<&'static str>,
    /// `direct`, or `holepunch` (made after a relay's BEP 55 `connect`).
    pub via: Option<&'static str>,
}

/// A tracker request, DHT lookup or incoming tally.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestRow {
    /// Torrent id (None for requests covering several torrents).
    pub torrent_id: Option<i64>,
    /// Unix seconds.
    pub at: i64,
    /// `tracker` / `dht` / `incoming`.
    pub source: &'static str,
    /// Tracker URL.
    pub url: Option<String>,
    /// `announce` / `scrape` / `get_peers` / `tally`.
    pub kind: &'static str,
    /// Success.
    pub ok: bool,
    /// Classified error.
    pub error: Option<String>,
    /// Duration.
    pub duration_ms: Option<u32>,
    /// Peers in the answer (kept).
    pub received_peers: Option<u32>,
    /// Peers beyond the cap per reply, not kept.
    pub dropped_peers: Option<u32>,
    /// Of which new.
    pub new_peers: Option<u32>,
    /// Of which already known.
    pub duplicate_peers: Option<u32>,
    /// Tracker's seeder count.
    pub seeders: Option<u32>,
    /// Tracker's leecher count.
    pub leechers: Option<u32>,
    /// Tracker's completed count.
    pub completed: Option<u32>,
    /// DHT lookup: BEP 33 estimate of the seeds (an estimate, not a count).
    pub dht_seeds_estimate: Option<f64>,
    /// DHT lookup: BEP 33 estimate of the peers.
    pub dht_peers_estimate: Option<f64>,
    /// DHT lookup: answers that carried scrape filters.
    pub dht_scrape_nodes: Option<u32>,
    /// DHT nodes queried by a lookup.
    pub nodes_queried: Option<u32>,
    /// DHT nodes that accepted our announce.
    pub nodes_announced: Option<u32>,
}

/// A monitoring sample.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StatisticRow {
    /// Unix seconds.
    pub at: i64,
    /// Peers tracked.
    pub peers_known: Option<u64>,
    /// Peers due now.
    pub peers_due: Option<u64>,
    /// Visits under way.
    pub peers_in_flight: Option<u64>,
    /// Workers busy at the sample.
    pub workers_busy: Option<u64>,
    /// Mean busy share since the last sample.
    pub workload: Option<f64>,
    /// Incoming handlers busy.
    pub incoming_active: Option<u64>,
    /// Records queued for the writer.
    pub writer_backlog: Option<u64>,
    /// Resident memory.
    pub rss_mb: Option<f64>,
    /// One-minute load average.
    pub load_avg: Option<f64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// Incoming connections accepted so far.
    pub incoming_accepted: Option<u64>,
    /// Incoming connections closed at once (all handlers busy) so far.
    pub incoming_refused_busy: Option<u64>,
    /// Incoming connections for torrents btda does not analyse so far.
    pub incoming_unknown: Option<u64>,
    /// Confirmed downloads so far.
    pub confirmed: Option<u64>,
    /// Peers reached at least once.
    pub peers_reached: Option<u64>,
    /// Connections that were btda itself, so far.
    pub self_connections: Option<u64>,
    /// Addresses of ours that sources named, not queued, so far.
    pub own_addresses_skipped: Option<u64>,
    /// Peer identities not created so far: their IP already was the most peers allowed
    /// per torrent (`peer.max_peers_per_ip`).
    pub identities_refused_per_ip: Option<u64>,
    /// Incoming connections closed at once so far: their IP already had its share.
    pub incoming_refused_per_ip: Option<u64>,
    /// Incoming connections shed in their handshake so far.
    pub incoming_shed: Option<u64>,
    /// Deadline of incoming handshakes in force.
    pub incoming_handshake_timeout_ms: Option<u64>,
    /// Peers not kept so far: their source had named the most per torrent.
    pub peers_refused_per_source: Option<u64>,
    /// Dials to never-answered addresses the dial budget deferred so far.
    pub dials_deferred: Option<u64>,
    /// The longest such deferral so far, ms.
    pub dial_deferral_max_ms: Option<u64>,
    /// Known peers per flag of their latest PEX mention (encryption, seed, uTP,
    /// holepunch, reachable).
    pub pex_flags: Option<[u64; 5]>,
    /// Hole punching so far (cumulative): incoming uTP connections, rendezvous sent,
    /// connects received, errors received, punched visits that reached the peer.
    pub punch: Option<[u64; 5]>,
    /// Non-global addresses not dialled, from trackers / the DHT / PEX, so far.
    pub not_global_tracker: Option<u64>,
    /// … from the DHT.
    pub not_global_dht: Option<u64>,
    /// … from peer exchange.
    pub not_global_pex: Option<u64>,
    /// Incoming MSE handshakes completed (cumulative).
    pub mse_accepted: Option<u64>,
    /// Incoming MSE handshakes for a torrent not analysed (cumulative).
    pub mse_unknown: Option<u64>,
    /// Incoming MSE handshakes that failed (cumulative).
    pub mse_malformed: Option<u64>,
    /// Connect timeout of first contacts in force, ms.
    pub connect_timeout_ms: Option<u64>,
    /// Handshake timeout of first contacts in force, ms.
    pub handshake_timeout_ms: Option<u64>,
    /// 99th percentile of the wait of fresh peers for their first visit, ms.
    pub first_wait_p99_ms: Option<u64>,
    /// The longest wait of a fresh peer for its first visit, ms.
    pub first_wait_max_ms: Option<u64>,
    /// 99th percentile of how late revisits of reached peers came, ms.
    pub revisit_late_p99_ms: Option<u64>,
    /// Share of those revisits within a tenth of the revisit delay.
    pub revisits_on_time: Option<f64>,
    /// Time threads waited for the peer queue's lock so far, summed, ms.
    pub queue_lock_wait_ms: Option<u64>,
    /// Share of the queue lock's acquisitions so far that had to wait.
    pub queue_lock_contended: Option<f64>,
}

/// Everything the writer thread can be asked to store.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// The run row (id 1).
    RunStart(RunStart),
    /// End of the run.
    RunEnd {
        /// Unix seconds.
        ended_at: i64,
        /// `signal`, `error`, …
        reason: String,
    },
    /// A torrent row (insert or replace, e.g. when magnet metadata arrives).
    Torrent(TorrentRow),
    /// A peer summary (insert or replace).
    Peer(PeerRow),
    /// A peer's reverse-DNS domain, found after its row was written.
    PeerDomain {
        /// Peer id.
        id: i64,
        /// Registrable domain.
        domain: String,
    },
    /// A visit.
    Visit(VisitRow),
    /// A visit and the peer row it updated, written in one transaction, so that a
    /// database cut short (a forced stop, a full disk) never has a peer row counting a
    /// visit row that is not there.
    PeerVisit {
        /// The peer's row after the visit, if it has one.
        peer: Option<Box<PeerRow>>,
        /// The visit.
        visit: VisitRow,
    },
    /// A request.
    Request(RequestRow),
    /// A monitoring sample.
    Statistic(Box<StatisticRow>),
}

/// A fresh random run id: 128 bits as 32 lower-case hex digits.
pub fn new_run_uid() -> String {
    rand::random::<[u8; 16]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Record {
    /// Writes the record with cached prepared statements.
    pub fn apply(&self, conn: &Connection) -> rusqlite::Result<()> {
        match self {
            Record::RunStart(r) => conn
                .prepare_cached(
                    "INSERT INTO run (id, started_at, hostname, version, config, geo_city, geo_asn,
                        key_check, run_uid)
                     VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![
                    r.started_at,
                    r.hostname,
                    r.version,
                    r.config,
                    r.geo_city,
                    r.geo_asn,
                    r.key_check,
                    r.run_uid
                ])
                .map(drop),
            Record::RunEnd { ended_at, reason } => conn
                .prepare_cached("UPDATE run SET ended_at = ?1, end_reason = ?2 WHERE id = 1")?
                .execute(params![ended_at, reason])
                .map(drop),
            Record::Torrent(t) => conn
                .prepare_cached(
                    "INSERT OR REPLACE INTO torrent (id, info_hash, name, pieces_count, piece_size,
                        total_size, complete_threshold, threshold, source, trackers, private, added_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )?
                .execute(params![
                    t.id,
                    t.info_hash,
                    t.name,
                    t.pieces_count,
                    t.piece_size,
                    t.total_size,
                    t.complete_threshold,
                    t.threshold,
                    t.source,
                    serde_json::to_string(&t.trackers).unwrap_or_else(|_| "[]".into()),
                    t.private,
                    t.added_at
                ])
                .map(drop),
            Record::Peer(p) => conn
                .prepare_cached(
                    // A snapshot never overwrites a newer one: two visits of one peer
                    // (one out, one in) may reach the writer in either order.
                    "INSERT INTO peer (id, torrent_id, peer_key, source, client, client_v,
                        country, continent, city, latitude, longitude, asn, as_org, first_seen,
                        first_pieces, last_seen, last_pieces, max_speed, visits, failed_visits,
                        crossed_at, client_version, crossed_strict, network, rdns_domain,
                        crossed_how, predicted_at, visits_in, crossed_within)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                        ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29)
                     ON CONFLICT(id) DO UPDATE SET torrent_id = excluded.torrent_id,
                        peer_key = excluded.peer_key, source = excluded.source,
                        client = excluded.client, client_v = excluded.client_v,
                        country = excluded.country, continent = excluded.continent,
                        city = excluded.city, latitude = excluded.latitude,
                        longitude = excluded.longitude, asn = excluded.asn,
                        as_org = excluded.as_org, first_seen = excluded.first_seen,
                        first_pieces = excluded.first_pieces, last_seen = excluded.last_seen,
                        last_pieces = excluded.last_pieces, max_speed = excluded.max_speed,
                        visits = excluded.visits, failed_visits = excluded.failed_visits,
                        crossed_at = excluded.crossed_at,
                        client_version = excluded.client_version,
                        crossed_strict = excluded.crossed_strict, network = excluded.network,
                        crossed_how = excluded.crossed_how, predicted_at = excluded.predicted_at,
                        visits_in = excluded.visits_in, crossed_within = excluded.crossed_within,
                        rdns_domain = coalesce(excluded.rdns_domain, peer.rdns_domain)
                     WHERE excluded.visits + excluded.failed_visits
                           >= peer.visits + peer.failed_visits",
                )?
                .execute(params![
                    p.id,
                    p.torrent_id,
                    p.peer_key,
                    p.source,
                    p.client,
                    p.client_v,
                    p.geo.country,
                    p.geo.continent,
                    p.geo.city,
                    p.geo.latitude,
                    p.geo.longitude,
                    p.geo.asn,
                    p.geo.as_org,
                    p.first_seen,
                    p.first_pieces,
                    p.last_seen,
                    p.last_pieces,
                    p.max_speed,
                    p.visits,
                    p.failed_visits,
                    p.crossed_at,
                    p.client_version,
                    p.crossed_strict,
                    p.network,
                    p.rdns_domain,
                    p.crossed_how,
                    p.predicted_at,
                    p.visits_in,
                    p.crossed_within
                ])
                .map(drop),
            Record::PeerDomain { id, domain } => conn
                .prepare_cached("UPDATE peer SET rdns_domain = ?2 WHERE id = ?1")?
                .execute(params![id, domain])
                .map(drop),
            Record::PeerVisit { peer, visit } => {
                if let Some(p) = peer {
                    Record::Peer((**p).clone()).apply(conn)?;
                }
                Record::Visit(visit.clone()).apply(conn)
            }
            Record::Visit(v) => conn
                .prepare_cached(
                    "INSERT INTO visit (peer_id, torrent_id, started_at, direction, outcome,
                        connect_ms, handshake_ms, duration_ms, pieces, state, messages, max_gap_ms,
                        attempt, invalid_messages, first_pieces, first_state_ms, encryption, fallback,
                        reason, transport, via)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                        ?17, ?18, ?19, ?20, ?21)",
                )?
                .execute(params![
                    v.peer_id,
                    v.torrent_id,
                    v.started_at,
                    v.direction,
                    v.outcome,
                    v.connect_ms,
                    v.handshake_ms,
                    v.duration_ms,
                    v.pieces,
                    v.state,
                    v.messages,
                    v.max_gap_ms,
                    v.attempt,
                    v.invalid_messages,
                    v.first_pieces,
                    v.first_state_ms,
                    v.encryption,
                    v.fallback,
                    v.reason,
                    v.transport,
                    v.via
                ])
                .map(drop),
            Record::Request(r) => conn
                .prepare_cached(
                    "INSERT INTO request (torrent_id, at, source, url, kind, ok, error, duration_ms,
                        received_peers, new_peers, duplicate_peers, seeders, leechers, completed,
                        nodes_queried, nodes_announced, dropped_peers, dht_seeds_estimate,
                        dht_peers_estimate, dht_scrape_nodes)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                        ?17, ?18, ?19, ?20)",
                )?
                .execute(params![
                    r.torrent_id,
                    r.at,
                    r.source,
                    r.url,
                    r.kind,
                    r.ok,
                    r.error,
                    r.duration_ms,
                    r.received_peers,
                    r.new_peers,
                    r.duplicate_peers,
                    r.seeders,
                    r.leechers,
                    r.completed,
                    r.nodes_queried,
                    r.nodes_announced,
                    r.dropped_peers,
                    r.dht_seeds_estimate,
                    r.dht_peers_estimate,
                    r.dht_scrape_nodes
                ])
                .map(drop),
            Record::Statistic(s) => conn
                .prepare_cached(
                    "INSERT INTO statistic (at, peers_known, peers_due, peers_in_flight,
                        workers_busy, workload, incoming_active, writer_backlog, rss_mb, load_avg,
                        open_fds, incoming_accepted, incoming_refused_busy, incoming_unknown,
                        confirmed, peers_reached, self_connections, own_addresses_skipped,
                        not_global_tracker, not_global_dht, not_global_pex, mse_accepted,
                        mse_unknown, mse_malformed, connect_timeout_ms, handshake_timeout_ms,
                        first_wait_p99_ms, revisit_late_p99_ms, revisits_on_time,
                        queue_lock_wait_ms, queue_lock_contended, first_wait_max_ms,
                        identities_refused_per_ip, incoming_refused_per_ip, incoming_shed,
                        incoming_handshake_timeout_ms, peers_refused_per_source, dials_deferred,
                        dial_deferral_max_ms, pex_flag_encryption, pex_flag_seed, pex_flag_utp,
                        pex_flag_holepunch, pex_flag_reachable, incoming_utp, punch_rendezvous,
                        punch_connects, punch_errors, punch_reached)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                        ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29,
                        ?30, ?31, ?32, ?33, ?34, ?35, ?36, ?37, ?38, ?39, ?40, ?41, ?42, ?43,
                        ?44, ?45, ?46, ?47, ?48, ?49)",
                )?
                .execute(params![
                    s.at,
                    s.peers_known,
                    s.peers_due,
                    s.peers_in_flight,
                    s.workers_busy,
                    s.workload,
                    s.incoming_active,
                    s.writer_backlog,
                    s.rss_mb,
                    s.load_avg,
                    s.open_fds,
                    s.incoming_accepted,
                    s.incoming_refused_busy,
                    s.incoming_unknown,
                    s.confirmed,
                    s.peers_reached,
                    s.self_connections,
                    s.own_addresses_skipped,
                    s.not_global_tracker,
                    s.not_global_dht,
                    s.not_global_pex,
                    s.mse_accepted,
                    s.mse_unknown,
                    s.mse_malformed,
                    s.connect_timeout_ms,
                    s.handshake_timeout_ms,
                    s.first_wait_p99_ms,
                    s.revisit_late_p99_ms,
                    s.revisits_on_time,
                    s.queue_lock_wait_ms,
                    s.queue_lock_contended,
                    s.first_wait_max_ms,
                    s.identities_refused_per_ip,
                    s.incoming_refused_per_ip,
                    s.incoming_shed,
                    s.incoming_handshake_timeout_ms,
                    s.peers_refused_per_source,
                    s.dials_deferred,
                    s.dial_deferral_max_ms,
                    s.pex_flags.map(|f| f[0]),
                    s.pex_flags.map(|f| f[1]),
                    s.pex_flags.map(|f| f[2]),
                    s.pex_flags.map(|f| f[3]),
                    s.pex_flags.map(|f| f[4]),
                    s.punch.map(|f| f[0]),
                    s.punch.map(|f| f[1]),
                    s.punch.map(|f| f[2]),
                    s.punch.map(|f| f[3]),
                    s.punch.map(|f| f[4])
                ])
                .map(drop),
        }
    }
}
