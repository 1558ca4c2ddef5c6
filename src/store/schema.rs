//! The database contract shared by btda, `btda report` and the R scripts in `thesis/`.
//!
//! Times are integer Unix seconds unless a column ends in `_ms`. No IP address, port or
//! full peer id is ever a column: a peer is identified on disk only by `peer_key`, a
//! keyed hash. Views use only SQL that SQLite 3.40 understands (R's RSQLite may be older
//! than the bundled SQLite that writes the file).

/// Schema version stored in `PRAGMA user_version`.
pub(crate) const SCHEMA_VERSION: i64 = 1;

/// Creates every table, index and view (idempotent).
pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS run (
    id            INTEGER PRIMARY KEY,
    started_at    INTEGER NOT NULL,      -- Unix seconds
    ended_at      INTEGER,               -- NULL while running or after a hard kill
    hostname      TEXT NOT NULL,
    version       TEXT NOT NULL,         -- btda version
    config        TEXT NOT NULL,         -- effective configuration, TOML
    end_reason    TEXT,                  -- signal / error / finished
    geo_city      TEXT,                  -- city database type and build date, if used
    geo_asn       TEXT,                  -- ASN database type and build date, if used
    key_check     TEXT,                  -- keyed hash of a fixed address: equal across runs with one privacy.key; NULL: random key
    run_uid       TEXT                   -- random id given at the start (32 hex): merge refuses the same run twice; NULL: a run from before it
);

CREATE TABLE IF NOT EXISTS torrent (
    id                 INTEGER PRIMARY KEY,
    info_hash          TEXT NOT NULL UNIQUE,  -- 40 lower-case hex (v1)
    name               TEXT NOT NULL,
    pieces_count       INTEGER,               -- NULL while magnet metadata is pending
    piece_size         INTEGER,               -- bytes
    total_size         INTEGER,               -- bytes, padding files excluded
    complete_threshold INTEGER,               -- T in pieces: ceil(threshold × pieces_count)
    threshold          REAL NOT NULL,         -- the configured fraction
    source             TEXT NOT NULL CHECK (source IN ('file', 'magnet')),
    trackers           TEXT NOT NULL,         -- JSON array of the URLs, in order
    private            INTEGER NOT NULL DEFAULT 0,
    added_at           INTEGER NOT NULL       -- when the run took it up
);

CREATE TABLE IF NOT EXISTS peer (
    id            INTEGER PRIMARY KEY,
    torrent_id    INTEGER NOT NULL REFERENCES torrent(id),
    peer_key      TEXT NOT NULL,          -- keyed hash of the address, never the address
    source        TEXT NOT NULL CHECK (source IN ('tracker', 'dht', 'pex', 'incoming', 'manual')),
    client        TEXT,                   -- decoded from the peer id
    client_version TEXT,                  -- version decoded from the peer id
    client_v      TEXT,                   -- BEP 10 `v` string
    country       TEXT,
    continent     TEXT,
    city          TEXT,
    latitude      REAL,
    longitude     REAL,
    asn           INTEGER,
    as_org        TEXT,
    first_seen    INTEGER NOT NULL,       -- first observation (first state message of the first successful visit)
    first_pieces  INTEGER NOT NULL,       -- pieces at the first observation
    last_seen     INTEGER NOT NULL,       -- latest observation (end of the latest successful visit)
    last_pieces   INTEGER NOT NULL,
    max_speed     REAL,                   -- pieces per second between consecutive observations
    visits        INTEGER NOT NULL,       -- successful visits
    failed_visits INTEGER NOT NULL,       -- failed visits since the first observation (earlier ones name no peer)
    crossed_at    INTEGER,                -- first observation at/above T after one below T (same visit or later)
    crossed_strict INTEGER NOT NULL DEFAULT 0, -- 1 if a below-T observation came from a piece-state message
    network       TEXT,                   -- /24 or /48, only with privacy.store_prefix
    rdns_domain   TEXT,                   -- registrable domain of the host name (geo.reverse_dns)
    crossed_how   TEXT,                   -- why the visit that saw the crossing happened: first / fixed / predicted / retry / incoming
    crossed_within INTEGER,               -- 1: that visit saw the peer below T and at/above T itself
    predicted_at  INTEGER,                -- crossing time the peer's rate predicted at its latest visit below T
    visits_in     INTEGER NOT NULL DEFAULT 0, -- successful visits it made by connecting in (= visits: incoming-only)
    UNIQUE (torrent_id, peer_key)
);

CREATE TABLE IF NOT EXISTS visit (
    id           INTEGER PRIMARY KEY,
    peer_id      INTEGER REFERENCES peer(id),  -- NULL if the peer was never identified
    torrent_id   INTEGER NOT NULL REFERENCES torrent(id),
    started_at   INTEGER NOT NULL,
    direction    TEXT NOT NULL CHECK (direction IN ('out', 'in')),
    outcome      TEXT NOT NULL,          -- ok / connect_timeout / refused / … (see README)
    connect_ms   INTEGER,
    handshake_ms INTEGER,
    duration_ms  INTEGER,
    pieces       INTEGER,                -- pieces known at the end of the visit
    state        TEXT CHECK (state IN ('bitfield', 'have_all', 'have_none', 'haves', 'none', 'invalid')),
    messages     INTEGER,
    max_gap_ms   INTEGER,
    attempt      INTEGER,                -- 1 = first contact with the peer; NULL for incoming
    invalid_messages INTEGER,            -- piece-state messages ignored as invalid
    first_pieces INTEGER,                -- pieces at the first valid piece-state message (NULL: none came)
    first_state_ms INTEGER,              -- when it came, ms after the visit started (the state window runs from here)
    encryption   TEXT CHECK (encryption IN ('rc4', 'plaintext')), -- MSE and the method the peers chose; NULL: no MSE
    fallback     INTEGER,                -- 1: plaintext was refused in this visit and MSE reached the peer
    reason       TEXT,                   -- why it happened: first / fixed / predicted / retry / incoming
    transport    TEXT,                   -- tcp / utp: what carried it, once a connection was made
    via          TEXT,                   -- direct / holepunch: made after a relay's BEP 55 connect
    run_id       INTEGER                 -- the run (host) that made it; NULL: the database's only run
);
-- For `make stats` and `btda report` at campaign size (tens of millions of visits): per
-- torrent and outcome counts read from this index alone (SQLite's GROUP BY otherwise
-- sorts every row), and each timing distribution of successful visits from its own
-- partial index. thesis/stats.R creates the same ones in older databases.
CREATE INDEX IF NOT EXISTS visit_torrent_outcome ON visit (torrent_id, outcome, direction, attempt);
CREATE INDEX IF NOT EXISTS visit_ok_connect ON visit (connect_ms) WHERE outcome = 'ok';
CREATE INDEX IF NOT EXISTS visit_ok_handshake ON visit (handshake_ms) WHERE outcome = 'ok';
CREATE INDEX IF NOT EXISTS visit_ok_gap ON visit (max_gap_ms) WHERE outcome = 'ok';
CREATE INDEX IF NOT EXISTS visit_peer ON visit (peer_id);

CREATE TABLE IF NOT EXISTS request (
    id              INTEGER PRIMARY KEY,
    torrent_id      INTEGER REFERENCES torrent(id),
    at              INTEGER NOT NULL,
    source          TEXT NOT NULL,       -- tracker / dht / incoming
    url             TEXT,
    kind            TEXT NOT NULL,       -- announce / scrape / get_peers / tally
    ok              INTEGER NOT NULL,
    error           TEXT,                -- classified error, NULL when ok
    duration_ms     INTEGER,
    received_peers  INTEGER,
    new_peers       INTEGER,
    duplicate_peers INTEGER,
    seeders         INTEGER,
    leechers        INTEGER,
    completed       INTEGER,
    nodes_queried   INTEGER,             -- DHT lookups: nodes asked
    nodes_announced INTEGER,             -- DHT lookups: nodes that took our announce
    dropped_peers   INTEGER,             -- peers beyond the 2,000 kept from one tracker reply
    dht_seeds_estimate REAL,             -- DHT lookups: BEP 33 estimate of seeds (merged BFsd of the answers)
    dht_peers_estimate REAL,             -- DHT lookups: BEP 33 estimate of peers (merged BFpe)
    dht_scrape_nodes INTEGER,            -- DHT lookups: answers that carried scrape filters
    run_id          INTEGER              -- the run (host) that asked; NULL: the database's only run
);
CREATE INDEX IF NOT EXISTS request_torrent ON request (torrent_id);

CREATE TABLE IF NOT EXISTS statistic (
    id              INTEGER PRIMARY KEY,
    at              INTEGER NOT NULL,
    peers_known     INTEGER,
    peers_due       INTEGER,
    peers_in_flight INTEGER,
    workers_busy    INTEGER,
    workload        REAL,                -- mean share of time workers were busy
    incoming_active INTEGER,
    writer_backlog  INTEGER,
    rss_mb          REAL,
    load_avg        REAL,
    open_fds        INTEGER,
    incoming_accepted     INTEGER,       -- cumulative since the start
    incoming_refused_busy INTEGER,       -- cumulative: closed at once, all handlers busy
    incoming_unknown      INTEGER,       -- cumulative: info-hash not analysed
    confirmed       INTEGER,             -- confirmed downloads so far
    peers_reached   INTEGER,             -- peers that answered at least once
    self_connections INTEGER,            -- cumulative: connections that were btda itself
    own_addresses_skipped INTEGER,       -- cumulative: our own address named by a source
    not_global_tracker INTEGER,          -- cumulative: non-global addresses not dialled, by source
    not_global_dht  INTEGER,
    not_global_pex  INTEGER,
    mse_accepted    INTEGER,             -- cumulative: incoming MSE handshakes completed
    mse_unknown     INTEGER,             -- cumulative: incoming MSE for a torrent not analysed
    mse_malformed   INTEGER,             -- cumulative: incoming MSE that failed (garbage, no sync, …)
    connect_timeout_ms   INTEGER,        -- connect timeout of first contacts in force (measured or fixed)
    handshake_timeout_ms INTEGER,        -- handshake timeout of first contacts in force
    first_wait_p99_ms    INTEGER,        -- p99 wait of fresh peers for their first visit after due (run so far)
    revisit_late_p99_ms  INTEGER,        -- p99 lateness of revisits of reached peers after due
    revisits_on_time     REAL,           -- share of those revisits within a tenth of the revisit delay
    queue_lock_wait_ms   INTEGER,        -- cumulative: time threads waited for the peer queue's lock, summed
    queue_lock_contended REAL,           -- share of the queue lock's acquisitions that had to wait (run so far)
    first_wait_max_ms    INTEGER,        -- longest wait of a fresh peer for its first visit after due (run so far)
    identities_refused_per_ip INTEGER,   -- cumulative: peer identities not created, their IP already the most peers allowed per torrent
    incoming_refused_per_ip INTEGER,     -- cumulative: incoming connections closed at once, their IP already at its share (handshakes or open)
    incoming_shed        INTEGER,        -- cumulative: incoming connections closed in their handshake to make room for another address
    incoming_handshake_timeout_ms INTEGER, -- deadline of incoming handshakes in force (measured or fixed)
    peers_refused_per_source INTEGER,    -- cumulative: peers not kept, their source (tracker, DHT, PEX) at its most peers per torrent
    dials_deferred       INTEGER,        -- cumulative: dials to never-answered addresses the dial budget deferred
    dial_deferral_max_ms INTEGER,        -- the longest such deferral (run so far)
    pex_flag_encryption INTEGER,         -- known peers whose latest PEX mention flagged: prefers encryption
    pex_flag_seed        INTEGER,        -- … seed
    pex_flag_utp         INTEGER,        -- … supports uTP
    pex_flag_holepunch   INTEGER,        -- … supports ut_holepunch
    pex_flag_reachable   INTEGER,        -- … reachable
    incoming_utp         INTEGER,        -- cumulative: incoming uTP connections (before the gate)
    punch_rendezvous     INTEGER,        -- cumulative: BEP 55 rendezvous btda sent to relays
    punch_connects       INTEGER,        -- cumulative: connect messages relays answered with
    punch_errors         INTEGER,        -- cumulative: error messages relays answered with
    punch_reached        INTEGER,        -- cumulative: punched peers reached (outgoing visit or their own connection in)
    run_id               INTEGER         -- the run (host) sampled; NULL: the database's only run
);

CREATE VIEW IF NOT EXISTS confirmed_download AS
SELECT p.id AS peer_id,
       p.torrent_id,
       t.info_hash,
       p.source,
       p.client,
       p.country,
       p.first_seen,
       p.first_pieces,
       p.crossed_at
FROM peer p
JOIN torrent t ON t.id = p.torrent_id
WHERE p.crossed_at IS NOT NULL;

CREATE VIEW IF NOT EXISTS confirmed_download_strict AS
SELECT * FROM confirmed_download c
WHERE (SELECT crossed_strict FROM peer p WHERE p.id = c.peer_id) = 1;
"#;

/// Opens (creating if needed) a database for writing: WAL, schema, version.
///
/// `synchronous = NORMAL` in WAL mode keeps every committed transaction across a crash or
/// SIGKILL of btda; only a power loss can take back the last commits.
pub fn open_for_writing(path: &std::path::Path) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    conn.execute_batch(SCHEMA)?;
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    Ok(conn)
}

/// Whether `table` has `column` (a database from before a column was added reads
/// without it).
pub fn has_column(conn: &rusqlite::Connection, table: &str, column: &str) -> bool {
    conn.prepare("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2")
        .and_then(|mut s| s.exists([table, column]))
        .unwrap_or(false)
}

/// Opens an existing database read-only (for `btda report` and tests).
pub fn open_read_only(path: &std::path::Path) -> rusqlite::Result<rusqlite::Connection> {
    rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn schema_creates_all_tables_and_the_view() {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::open_for_writing(&dir.path().join("t.sqlite")).unwrap();
        let names: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type IN ('table','view') ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            names,
            [
                "confirmed_download",
                "confirmed_download_strict",
                "peer",
                "request",
                "run",
                "statistic",
                "torrent",
                "visit"
            ]
        );
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }
}
