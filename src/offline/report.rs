//! Read-side queries behind `btda report`: a per-torrent summary of a run database.
//!
//! The same numbers are what the R scripts compute, so both read the contract tables
//! the same way (confirmed downloads from the `confirmed_download` view).

use std::path::Path;

use serde::Serialize;

/// The run row, as far as it is known.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunInfo {
    /// Unix seconds.
    pub started_at: i64,
    /// Unix seconds, `None` if the run did not end cleanly.
    pub ended_at: Option<i64>,
    /// Host name.
    pub hostname: String,
    /// btda version.
    pub version: String,
    /// Why it ended.
    pub end_reason: Option<String>,
    /// Connect and handshake timeouts of first contacts in force at the last `statistic`
    /// row, ms (measured when configured "auto").
    pub timeouts_ms: Option<(i64, i64)>,
    /// Peer identities not created because their IP already was the most peers allowed
    /// per torrent (`statistic.identities_refused_per_ip` at the last row).
    pub identities_refused_per_ip: Option<i64>,
}

/// One torrent's figures.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TorrentSummary {
    /// 40 hex.
    pub info_hash: String,
    /// Name.
    pub name: String,
    /// `file` / `magnet`.
    pub source: String,
    /// Pieces (None while metadata is pending).
    pub pieces_count: Option<i64>,
    /// Threshold T in pieces.
    pub complete_threshold: Option<i64>,
    /// Peers with at least one successful visit.
    pub peers: i64,
    /// Visit attempts.
    pub visits: i64,
    /// Successful visits.
    pub visits_ok: i64,
    /// Peers whose latest visit was at or above T.
    pub complete_peers: i64,
    /// Peers reached only with encryption: an outgoing plaintext handshake was refused
    /// and MSE then succeeded (`visit.fallback`), and no visit succeeded in plaintext.
    /// Evidence comes from the `fallback` policy only.
    pub encrypted_only: i64,
    /// Confirmed downloads.
    pub confirmed: i64,
    /// Confirmed downloads under the strict rule.
    pub confirmed_strict: i64,
    /// Per tracker: latest scrape and the growth of its completed count.
    pub trackers: Vec<TrackerFigures>,
    /// The largest completed-count increase of any tracker over the run.
    pub completed_increase: Option<i64>,
    /// The tracker with that increase.
    pub completed_increase_tracker: Option<String>,
    /// How its crossings were witnessed (None for a database from before btda recorded
    /// it).
    pub witnessed: Option<Witnessed>,
    /// The DHT's own estimate of the swarm (BEP 33), when any lookup got one.
    pub dht_scrape: Option<DhtScrape>,
}

/// A torrent's DHT scrape (BEP 33): estimates from merged Bloom filters, not counts.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DhtScrape {
    /// Seeds estimated by the latest lookup that had filters.
    pub seeds: f64,
    /// Peers estimated by it.
    pub peers: f64,
    /// The largest peer estimate of the run.
    pub peers_max: f64,
    /// Lookups that had filters.
    pub lookups: i64,
}

fn dht_scrape(conn: &rusqlite::Connection, torrent_id: i64) -> rusqlite::Result<Option<DhtScrape>> {
    conn.query_row(
        "SELECT (SELECT dht_seeds_estimate FROM request WHERE torrent_id = ?1 AND source = 'dht'
                   AND dht_peers_estimate IS NOT NULL ORDER BY id DESC LIMIT 1),
                (SELECT dht_peers_estimate FROM request WHERE torrent_id = ?1 AND source = 'dht'
                   AND dht_peers_estimate IS NOT NULL ORDER BY id DESC LIMIT 1),
                max(dht_peers_estimate), count(dht_peers_estimate)
         FROM request WHERE torrent_id = ?1 AND source = 'dht'",
        [torrent_id],
        |r| {
            let lookups: i64 = r.get(3)?;
            Ok((lookups > 0).then(|| -> rusqlite::Result<DhtScrape> {
                Ok(DhtScrape {
                    seeds: r.get::<_, Option<f64>>(0)?.unwrap_or(0.0),
                    peers: r.get::<_, Option<f64>>(1)?.unwrap_or(0.0),
                    peers_max: r.get::<_, Option<f64>>(2)?.unwrap_or(0.0),
                    lookups,
                })
            }))
        },
    )?
    .transpose()
}

/// How the confirmed downloads of one torrent were witnessed: the reason of the visit
/// that saw each crossing (`peer.crossed_how`), how many of those visits saw both
/// sides of T themselves, and how many crossings came from peers that btda only ever
/// saw because they connected in.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Witnessed {
    /// By a visit timed by the peer's own predicted crossing.
    pub predicted: i64,
    /// By a fixed-delay revisit.
    pub fixed: i64,
    /// By the first visit (necessarily inside it).
    pub first: i64,
    /// By a retry after a failure.
    pub retry: i64,
    /// By a connection the peer made to btda.
    pub incoming: i64,
    /// Of all, crossings seen inside one visit (below T and at or above T in it).
    pub within_visit: i64,
    /// Of all, peers every successful visit of which was incoming (behind NAT): seen
    /// only because they dialled in.
    pub incoming_only: i64,
    /// Crossings with a prediction made before them.
    pub with_prediction: i64,
    /// Of those, the observed crossing within 30 s of the predicted time.
    pub predicted_within_30s: i64,
}

/// One tracker's figures for one torrent.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TrackerFigures {
    /// Announce URL.
    pub url: String,
    /// Successful / all announces.
    pub announces_ok: i64,
    /// All announces.
    pub announces: i64,
    /// Seeders in the latest successful scrape.
    pub seeders: Option<i64>,
    /// Leechers in the latest successful scrape.
    pub leechers: Option<i64>,
    /// Completed in the latest successful scrape.
    pub completed: Option<i64>,
    /// max − min of `completed` over the run (announces and scrapes).
    pub completed_increase: Option<i64>,
}

fn tracker_figures(
    conn: &rusqlite::Connection,
    torrent_id: i64,
) -> rusqlite::Result<Vec<TrackerFigures>> {
    let latest = |col: &str| {
        format!(
            "(SELECT {col} FROM request s WHERE s.torrent_id = r.torrent_id AND s.url = r.url
               AND s.kind = 'scrape' AND s.ok = 1 ORDER BY s.id DESC LIMIT 1)"
        )
    };
    let sql = format!(
        "SELECT r.url,
            sum(r.kind = 'announce' AND r.ok = 1), sum(r.kind = 'announce'),
            {}, {}, {},
            max(CASE WHEN r.ok = 1 THEN r.completed END) - min(CASE WHEN r.ok = 1 THEN r.completed END)
         FROM request r WHERE r.torrent_id = ?1 AND r.source = 'tracker' AND r.url IS NOT NULL
         GROUP BY r.url ORDER BY r.url",
        latest("seeders"),
        latest("leechers"),
        latest("completed")
    );
    conn.prepare(&sql)?
        .query_map([torrent_id], |r| {
            Ok(TrackerFigures {
                url: r.get(0)?,
                announces_ok: r.get(1)?,
                announces: r.get(2)?,
                seeders: r.get(3)?,
                leechers: r.get(4)?,
                completed: r.get(5)?,
                completed_increase: r.get(6)?,
            })
        })?
        .collect()
}

impl Witnessed {
    /// Crossings with a how: the torrent's confirmed downloads.
    pub fn total(&self) -> i64 {
        self.predicted + self.fixed + self.first + self.retry + self.incoming
    }

    /// One line: the crossings by how they were witnessed.
    pub fn describe(&self) -> String {
        format!(
            "predicted visit {}, fixed revisit {}, first visit {}, retry {}, incoming {} ({} \
             from peers btda never reached itself); {} of them inside one visit",
            self.predicted,
            self.fixed,
            self.first,
            self.retry,
            self.incoming,
            self.incoming_only,
            self.within_visit
        )
    }
}

fn witnessed(conn: &rusqlite::Connection, torrent_id: i64) -> rusqlite::Result<Witnessed> {
    conn.query_row(
        "SELECT ifnull(sum(crossed_how = 'predicted'), 0), ifnull(sum(crossed_how = 'fixed'), 0),
            ifnull(sum(crossed_how = 'first'), 0), ifnull(sum(crossed_how = 'retry'), 0),
            ifnull(sum(crossed_how = 'incoming'), 0), ifnull(sum(crossed_within = 1), 0),
            ifnull(sum(visits_in = visits), 0), ifnull(sum(predicted_at IS NOT NULL), 0),
            ifnull(sum(abs(crossed_at - predicted_at) <= 30), 0)
         FROM peer WHERE torrent_id = ?1 AND crossed_at IS NOT NULL",
        [torrent_id],
        |r| {
            Ok(Witnessed {
                predicted: r.get(0)?,
                fixed: r.get(1)?,
                first: r.get(2)?,
                retry: r.get(3)?,
                incoming: r.get(4)?,
                within_visit: r.get(5)?,
                incoming_only: r.get(6)?,
                with_prediction: r.get(7)?,
                predicted_within_30s: r.get(8)?,
            })
        },
    )
}

/// The whole report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// The run, if its row exists.
    pub run: Option<RunInfo>,
    /// Torrents in id order.
    pub torrents: Vec<TorrentSummary>,
    /// The host of every run in the database (several after `btda merge`).
    pub hosts: Vec<String>,
}

/// Reads the summary from a run database (opened read-only).
pub fn read(path: &Path) -> rusqlite::Result<Report> {
    let conn = crate::store::schema::open_read_only(path)?;
    let run = conn
        .query_row(
            "SELECT started_at, ended_at, hostname, version, end_reason FROM run WHERE id = 1",
            [],
            |r| {
                Ok(RunInfo {
                    started_at: r.get(0)?,
                    ended_at: r.get(1)?,
                    hostname: r.get(2)?,
                    version: r.get(3)?,
                    end_reason: r.get(4)?,
                    timeouts_ms: None,
                    identities_refused_per_ip: None,
                })
            },
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    let run = run.map(|mut run| {
        run.timeouts_ms = conn
            .query_row(
                "SELECT connect_timeout_ms, handshake_timeout_ms FROM statistic
                 WHERE connect_timeout_ms IS NOT NULL ORDER BY at DESC, id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .ok();
        run.identities_refused_per_ip = conn
            .query_row(
                "SELECT identities_refused_per_ip FROM statistic
                 WHERE identities_refused_per_ip IS NOT NULL ORDER BY at DESC, id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .ok();
        run
    });
    let mut stmt = conn.prepare(
        "SELECT t.id, t.info_hash, t.name, t.source, t.pieces_count, t.complete_threshold,
            (SELECT count(*) FROM peer p WHERE p.torrent_id = t.id),
            (SELECT count(*) FROM visit v WHERE v.torrent_id = t.id),
            (SELECT count(*) FROM visit v WHERE v.torrent_id = t.id AND v.outcome = 'ok'),
            (SELECT count(*) FROM peer p WHERE p.torrent_id = t.id
                AND p.last_pieces >= t.complete_threshold),
            (SELECT count(*) FROM confirmed_download c WHERE c.torrent_id = t.id),
            (SELECT count(*) FROM confirmed_download_strict c WHERE c.torrent_id = t.id),
            (SELECT count(*) FROM peer p WHERE p.torrent_id = t.id
                AND EXISTS (SELECT 1 FROM visit v WHERE v.peer_id = p.id
                    AND v.outcome = 'ok' AND v.fallback = 1)
                AND NOT EXISTS (SELECT 1 FROM visit v WHERE v.peer_id = p.id
                    AND v.outcome = 'ok' AND v.encryption IS NULL))
         FROM torrent t ORDER BY t.id",
    )?;
    let mut torrents = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                TorrentSummary {
                    info_hash: r.get(1)?,
                    name: r.get(2)?,
                    source: r.get(3)?,
                    pieces_count: r.get(4)?,
                    complete_threshold: r.get(5)?,
                    peers: r.get(6)?,
                    visits: r.get(7)?,
                    visits_ok: r.get(8)?,
                    complete_peers: r.get(9)?,
                    confirmed: r.get(10)?,
                    confirmed_strict: r.get(11)?,
                    encrypted_only: r.get(12)?,
                    trackers: Vec::new(),
                    completed_increase: None,
                    completed_increase_tracker: None,
                    witnessed: None,
                    dht_scrape: None,
                },
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let recorded_how = crate::store::schema::has_column(&conn, "peer", "crossed_how");
    let scraped_dht = crate::store::schema::has_column(&conn, "request", "dht_peers_estimate");
    for (id, t) in &mut torrents {
        t.trackers = tracker_figures(&conn, *id)?;
        if scraped_dht {
            t.dht_scrape = dht_scrape(&conn, *id)?;
        }
        if recorded_how {
            t.witnessed = Some(witnessed(&conn, *id)?);
        }
        if let Some(best) = t
            .trackers
            .iter()
            .filter(|f| f.completed_increase.is_some())
            .max_by_key(|f| f.completed_increase)
        {
            t.completed_increase = best.completed_increase;
            t.completed_increase_tracker = Some(best.url.clone());
        }
    }
    let torrents = torrents.into_iter().map(|(_, t)| t).collect();
    let hosts = conn
        .prepare("SELECT hostname FROM run ORDER BY id")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(Report {
        run,
        torrents,
        hosts,
    })
}

/// One torrent's swarm as each source sees it, side by side and labelled: what
/// trackers say (their latest scrape, the largest tracker), what the DHT estimates
/// (BEP 33), whom btda reached, and whom it counted.
fn swarm_sizes(t: &TorrentSummary) -> String {
    let tracker = t
        .trackers
        .iter()
        .filter_map(|f| Some((f.seeders? + f.leechers?, f)))
        .max_by_key(|(n, _)| *n)
        .map_or_else(
            || "-".to_string(),
            |(_, f)| {
                format!(
                    "{} seeders + {} leechers",
                    f.seeders.unwrap_or(0),
                    f.leechers.unwrap_or(0)
                )
            },
        );
    let dht = t.dht_scrape.as_ref().map_or_else(
        || "-".to_string(),
        |d| {
            format!(
                "~{:.0} seeds, ~{:.0} peers (largest ~{:.0}; {} lookups)",
                d.seeds, d.peers, d.peers_max, d.lookups
            )
        },
    );
    format!(
        "
swarm of {}: tracker scrape (latest, largest tracker) {tracker} | DHT scrape (BEP 33 estimate, latest) {dht} | peers reached by btda {} | confirmed downloads {}\n",
        &t.info_hash[..8],
        t.peers,
        t.confirmed
    )
}

/// Renders the report as an aligned plain-text table.
pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    match &report.run {
        Some(run) => {
            let end = match (run.ended_at, &run.end_reason) {
                (Some(at), Some(reason)) => format!(
                    "ended {} ({reason}), ran {}",
                    crate::clock::format_utc(at),
                    crate::clock::format_duration(at - run.started_at)
                ),
                _ => "did not end cleanly (no end time)".into(),
            };
            out.push_str(&format!(
                "run on {} started {}, {end}, btda {}\n",
                run.hostname,
                crate::clock::format_utc(run.started_at),
                run.version
            ));
            if let Some(n) = run.identities_refused_per_ip.filter(|&n| n > 0) {
                out.push_str(&format!(
                    "peer identities refused: {n} (their IP already was the most peers allowed per torrent, peer.max_peers_per_ip)\n"
                ));
            }
            if let Some((connect, handshake)) = run.timeouts_ms {
                out.push_str(&format!(
                    "timeouts of first contacts at the end: connect {connect} ms, handshake {handshake} ms\n"
                ));
            }
        }
        None => out.push_str("no run row in this database\n"),
    }
    if report.hosts.len() > 1 {
        out.push_str(&format!(
            "merged from {} runs (btda merge), hosts: {}\n",
            report.hosts.len(),
            report.hosts.join(", ")
        ));
    }
    let header = [
        "info_hash",
        "name",
        "pieces",
        "T",
        "peers",
        "visits",
        "ok",
        "complete",
        "mse-only",
        "confirmed",
    ];
    let opt = |v: Option<i64>| v.map_or_else(|| "-".to_string(), |n| n.to_string());
    let rows: Vec<[String; 10]> = report
        .torrents
        .iter()
        .map(|t| {
            [
                t.info_hash.clone(),
                truncate(&crate::text::escape_control(&t.name), 40),
                opt(t.pieces_count),
                opt(t.complete_threshold),
                t.peers.to_string(),
                t.visits.to_string(),
                t.visits_ok.to_string(),
                t.complete_peers.to_string(),
                match t.encrypted_only {
                    0 => "0".to_string(),
                    // Share of the peers with a row: what issue readers compare.
                    n => format!("{n} ({:.1} %)", 100.0 * n as f64 / t.peers.max(1) as f64),
                },
                t.confirmed.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            let pad = w - cell.chars().count();
            if i <= 1 {
                s.push_str(cell);
                s.push_str(&" ".repeat(pad));
            } else {
                s.push_str(&" ".repeat(pad));
                s.push_str(cell);
            }
            s.push_str("  ");
        }
        s.trim_end().to_string() + "\n"
    };
    out.push_str(&line(&header.map(String::from)));
    for row in &rows {
        out.push_str(&line(row));
    }
    for t in report.torrents.iter().filter(|t| !t.trackers.is_empty()) {
        out.push_str(&format!(
            "\ntrackers of {} ({}):\n",
            &t.info_hash[..8],
            truncate(&crate::text::escape_control(&t.name), 40)
        ));
        for f in &t.trackers {
            let n = |v: Option<i64>| v.map_or_else(|| "-".to_string(), |n| n.to_string());
            out.push_str(&format!(
                "  {}  announces {}/{} ok  scrape: {} seeders, {} leechers, {} completed (+{} over the run)\n",
                crate::text::escape_control(&f.url),
                f.announces_ok,
                f.announces,
                n(f.seeders),
                n(f.leechers),
                n(f.completed),
                n(f.completed_increase)
            ));
        }
        if let (Some(inc), Some(url)) = (t.completed_increase, &t.completed_increase_tracker) {
            out.push_str(&format!(
                "  largest completed increase: +{inc} ({})\n",
                crate::text::escape_control(url)
            ));
        }
    }
    for t in report
        .torrents
        .iter()
        .filter(|t| !t.trackers.is_empty() || t.dht_scrape.is_some())
    {
        out.push_str(&swarm_sizes(t));
    }
    for t in &report.torrents {
        let Some(w) = t.witnessed.as_ref().filter(|_| t.confirmed > 0) else {
            continue;
        };
        out.push_str(&format!(
            "\ncrossings of {} witnessed by: {}\n",
            &t.info_hash[..8],
            w.describe()
        ));
        if w.with_prediction > 0 {
            out.push_str(&format!(
                "  predicted crossing times: {} of {} within 30 s of the observed crossing\n",
                w.predicted_within_30s, w.with_prediction
            ));
        }
    }
    let total: i64 = report.torrents.iter().map(|t| t.confirmed).sum();
    out.push_str(&format!(
        "{} torrents, {total} confirmed downloads\n",
        report.torrents.len()
    ));
    out
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        s.chars().take(max - 1).collect::<String>() + "…"
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_report_names_identities_refused_for_a_crowded_address() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.sqlite");
        let conn = crate::store::schema::open_for_writing(&path).unwrap();
        conn.execute_batch(
            "INSERT INTO run (id, started_at, hostname, version, config)
                 VALUES (1, 1000, 'h', 'btda', '');
             INSERT INTO statistic (at, identities_refused_per_ip) VALUES (1001, 3);
             INSERT INTO statistic (at, identities_refused_per_ip) VALUES (1002, 290);",
        )
        .unwrap();
        drop(conn);
        let report = super::read(&path).unwrap();
        assert_eq!(
            report
                .run
                .as_ref()
                .and_then(|r| r.identities_refused_per_ip),
            Some(290)
        );
        let text = super::render_text(&report);
        assert!(text.contains("peer identities refused: 290"), "{text}");
    }

    #[test]
    fn tracker_scrape_dht_scrape_peers_and_downloads_stand_side_by_side() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.sqlite");
        let conn = crate::store::schema::open_for_writing(&path).unwrap();
        conn.execute_batch(
            "INSERT INTO run (id, started_at, hostname, version, config)
                 VALUES (1, 1000, 'h', 'btda', '');
             INSERT INTO torrent (id, info_hash, name, pieces_count, piece_size, total_size,
                 complete_threshold, threshold, source, trackers, added_at)
                 VALUES (1, 'abababababababababababababababababababab', 't', 100, 16384,
                 1638400, 98, 0.98, 'file', '[]', 1000);
             INSERT INTO request (torrent_id, at, source, url, kind, ok, seeders, leechers,
                 completed) VALUES (1, 1001, 'tracker', 'udp://t', 'scrape', 1, 40, 12, 300);
             INSERT INTO request (torrent_id, at, source, kind, ok, dht_seeds_estimate,
                 dht_peers_estimate, dht_scrape_nodes)
                 VALUES (1, 1002, 'dht', 'get_peers', 1, 30.2, 70.4, 5);
             INSERT INTO request (torrent_id, at, source, kind, ok, dht_seeds_estimate,
                 dht_peers_estimate, dht_scrape_nodes)
                 VALUES (1, 1003, 'dht', 'get_peers', 1, 33.0, 64.6, 4);
             INSERT INTO request (torrent_id, at, source, kind, ok)
                 VALUES (1, 1004, 'dht', 'get_peers', 1);",
        )
        .unwrap();
        drop(conn);
        let report = super::read(&path).unwrap();
        let dht = report.torrents[0].dht_scrape.clone().unwrap();
        assert_eq!(
            (dht.seeds, dht.peers, dht.peers_max, dht.lookups),
            (33.0, 64.6, 70.4, 2)
        );
        let text = super::render_text(&report);
        assert!(
            text.contains(
                "swarm of abababab: tracker scrape (latest, largest tracker) 40 seeders + 12 leechers \
                 | DHT scrape (BEP 33 estimate, latest) ~33 seeds, ~65 peers (largest ~70; 2 lookups) \
                 | peers reached by btda 0 | confirmed downloads 0"
            ),
            "{text}"
        );
    }
}
