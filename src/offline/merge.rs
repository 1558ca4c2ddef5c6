//! `btda merge`: runs of the same torrents from several hosts (vantage points) into one
//! database with the same schema.
//!
//! A peer is its keyed hash and torrent, so runs that used the same `privacy.key` name
//! the same peer alike (`run.key_check` proves it without storing the key). A peer seen
//! by several hosts becomes one row; its observations from all hosts are put in time
//! order and the counting rule ([`crate::counting::Progress`]) is applied to them, so a peer
//! seen below T by one host and at or above T by another later is one confirmed
//! download. Visits, tracker requests and statistic rows are copied with the run (host)
//! that made them in `run_id`.
//!
//! Merge trusts no input: the same run given twice (under any name) is refused by its
//! run id (older runs: host, start time and key check), every value read is checked
//! against btda's schema and a plausible range ([`super::trust`]), sums are checked,
//! and the output is written to a temporary file beside OUT that becomes OUT only when
//! everything succeeded — a failed, interrupted or killed merge leaves no OUT.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::types::Value;
use rusqlite::{Connection, params};

use crate::counting::Progress;
use crate::store::schema;

/// Why runs could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// A database could not be read or written.
    #[error("{path}: {source}")]
    Db {
        /// The database.
        path: String,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The output exists: merge never overwrites.
    #[error("{0} exists: btda merge writes a new database")]
    Exists(String),
    /// Fewer than two inputs, or an input without a run.
    #[error("{0}")]
    Inputs(String),
    /// Peers cannot be matched across the runs.
    #[error(
        "{path} used {what}: peers can only be matched across hosts that use the same \
         privacy.key (set it in every host's btda.toml)"
    )]
    Keys {
        /// The run that does not match the first one.
        path: String,
        /// A random key, or another key.
        what: &'static str,
    },
    /// The same run is in two inputs (or twice in one).
    #[error(
        "{path_b} holds a run that {path_a} holds too ({what}): the same run merged twice \
         would count its visits twice"
    )]
    SameRun {
        /// The input where the run was first seen.
        path_a: String,
        /// The input where it came again.
        path_b: String,
        /// How the run was recognised.
        what: String,
    },
    /// An input holds a value merge cannot trust.
    #[error("{path}: {what}; nothing was merged")]
    Refused {
        /// The input.
        path: String,
        /// The table, row, column and value, and why.
        what: String,
    },
    /// The merged database could not be moved into place.
    #[error("{path}: {source}")]
    Io {
        /// OUT.
        path: String,
        /// What the file system said.
        source: std::io::Error,
    },
    /// A torrent's threshold differs between runs.
    #[error(
        "torrent {info_hash}: threshold {a} in {path_a} but {b} in {path_b}: \
         downloads counted against different thresholds cannot be merged"
    )]
    Threshold {
        /// The torrent.
        info_hash: String,
        /// First database and its threshold.
        path_a: String,
        /// Its threshold (pieces, fraction).
        a: String,
        /// Second database.
        path_b: String,
        /// Its threshold.
        b: String,
    },
}

/// What a merge produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeSummary {
    /// Per input: its path, its hosts and its confirmed downloads.
    pub inputs: Vec<(String, Vec<String>, u64)>,
    /// Torrents in the merged database.
    pub torrents: usize,
    /// Peers in it.
    pub peers: usize,
    /// Confirmed downloads in it.
    pub confirmed: u64,
    /// Of which crossings that no single run saw (below T on one host, at or above T
    /// on another).
    pub across_hosts: u64,
}

struct Input {
    path: String,
    conn: Connection,
}

/// A peer row being merged: the `peer` columns and where it came from.
#[derive(Debug, Clone)]
struct PeerRow {
    cols: Vec<Value>,
    sources: Vec<(usize, i64)>,
}

/// The `peer` columns merged, in this order.
const PEER_COLS: &[&str] = &[
    "torrent_id",
    "peer_key",
    "source",
    "client",
    "client_version",
    "client_v",
    "country",
    "continent",
    "city",
    "latitude",
    "longitude",
    "asn",
    "as_org",
    "first_seen",
    "first_pieces",
    "last_seen",
    "last_pieces",
    "max_speed",
    "visits",
    "failed_visits",
    "crossed_at",
    "crossed_strict",
    "network",
    "rdns_domain",
    "crossed_how",
    "crossed_within",
    "predicted_at",
    "visits_in",
];

fn col(name: &str) -> usize {
    PEER_COLS.iter().position(|c| *c == name).unwrap_or(0)
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Integer(i) => Some(*i),
        _ => None,
    }
}

fn real(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Real(r) => Some(*r),
        _ => None,
    }
}

/// The tables merge reads or copies, whose every value is checked.
const CHECKED_TABLES: &[&str] = &["run", "torrent", "peer", "visit", "request", "statistic"];

/// Merges the runs in `inputs` into a new database at `out`. The merge is written to
/// a temporary file beside `out`, which becomes `out` only when everything succeeded
/// (never over an existing file); on any error nothing is left behind.
pub fn merge(out: &Path, inputs: &[PathBuf]) -> Result<MergeSummary, MergeError> {
    if inputs.len() < 2 {
        return Err(MergeError::Inputs(
            "give at least two run databases to merge".into(),
        ));
    }
    if out.exists() {
        return Err(MergeError::Exists(out.display().to_string()));
    }
    let name = out
        .file_name()
        .map_or_else(|| "merged".into(), |n| n.to_string_lossy().into_owned());
    let temp = out.with_file_name(format!(".{name}.merging-{:08x}", rand::random::<u32>()));
    let result = merge_into(&temp, out, inputs).and_then(|summary| {
        put_in_place(&temp, out)?;
        Ok(summary)
    });
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = temp.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
    result
}

/// Makes the finished temporary database `out`: a hard link (which fails if `out`
/// appeared meanwhile: never overwritten), or a rename where links are not supported.
fn put_in_place(temp: &Path, out: &Path) -> Result<(), MergeError> {
    let io = |source| MergeError::Io {
        path: out.display().to_string(),
        source,
    };
    match std::fs::hard_link(temp, out) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(MergeError::Exists(out.display().to_string()))
        }
        Err(_) if out.exists() => Err(MergeError::Exists(out.display().to_string())),
        Err(_) => std::fs::rename(temp, out).map_err(io),
    }
}

/// The merge itself, into `temp` (named `out` in messages).
fn merge_into(temp: &Path, out: &Path, inputs: &[PathBuf]) -> Result<MergeSummary, MergeError> {
    let mut opened = Vec::new();
    for p in inputs {
        let path = p.display().to_string();
        if !p.is_file() {
            return Err(MergeError::Inputs(format!("{path}: no such database")));
        }
        let conn = schema::open_read_only(p).map_err(|source| MergeError::Db {
            path: path.clone(),
            source,
        })?;
        opened.push(Input { path, conn });
    }
    let out_path = out.display().to_string();
    let db = |path: &str| {
        let path = path.to_string();
        move |source| MergeError::Db { path, source }
    };
    check_keys(&opened)?;
    check_distinct_runs(&opened)?;
    let mut dst = schema::open_for_writing(temp).map_err(db(&out_path))?;
    // One file, no WAL beside it when it is moved into place.
    dst.pragma_update(None, "journal_mode", "DELETE")
        .map_err(db(&out_path))?;
    let expected = super::trust::Expected::read(&dst, CHECKED_TABLES).map_err(db(&out_path))?;
    for input in &opened {
        for table in CHECKED_TABLES {
            expected
                .check_table(&input.conn, table)
                .map_err(|what| MergeError::Refused {
                    path: input.path.clone(),
                    what,
                })?;
        }
    }
    let tx = dst.transaction().map_err(db(&out_path))?;

    // Runs: new ids in input order; rows without a run id belong to their input's first.
    let mut run_of: Vec<HashMap<i64, i64>> = Vec::new();
    let mut default_run: Vec<i64> = Vec::new();
    let mut hosts: Vec<Vec<String>> = Vec::new();
    let mut next_run = 1;
    for input in &opened {
        let uid = if schema::has_column(&input.conn, "run", "run_uid") {
            "run_uid"
        } else {
            "NULL"
        };
        let runs: Vec<(i64, Vec<Value>)> = rows(
            &input.conn,
            &format!(
                "SELECT id, started_at, ended_at, hostname, version, config, end_reason, \
                 geo_city, geo_asn, key_check, {uid} FROM run ORDER BY id"
            ),
        )
        .map_err(db(&input.path))?
        .into_iter()
        .map(|r| (int(&r[0]).unwrap_or(0), r[1..].to_vec()))
        .collect();
        if runs.is_empty() {
            return Err(MergeError::Inputs(format!("{}: no run in it", input.path)));
        }
        default_run.push(next_run);
        let mut map = HashMap::new();
        let mut names = Vec::new();
        for (old, v) in runs {
            tx.execute(
                "INSERT INTO run (id, started_at, ended_at, hostname, version, config, end_reason,
                    geo_city, geo_asn, key_check, run_uid)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    next_run, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9]
                ],
            )
            .map_err(db(&out_path))?;
            if let Value::Text(h) = &v[2] {
                names.push(h.clone());
            }
            map.insert(old, next_run);
            next_run += 1;
        }
        run_of.push(map);
        hosts.push(names);
    }

    // Torrents: one per info-hash, with the same threshold everywhere.
    let mut torrent_of: Vec<HashMap<i64, i64>> = Vec::new();
    let mut by_hash: HashMap<String, (i64, Option<i64>, f64, usize)> = HashMap::new();
    for (i, input) in opened.iter().enumerate() {
        let mut map = HashMap::new();
        for r in rows(
            &input.conn,
            "SELECT id, info_hash, name, pieces_count, piece_size, total_size, \
             complete_threshold, threshold, source, trackers, private, added_at FROM torrent \
             ORDER BY id",
        )
        .map_err(db(&input.path))?
        {
            let hash = match &r[1] {
                Value::Text(h) => h.clone(),
                _ => continue,
            };
            let (t, frac) = (int(&r[6]), real(&r[7]).unwrap_or(0.0));
            let id = if let Some(&(id, known_t, known_frac, from)) = by_hash.get(&hash) {
                let differs = (known_frac - frac).abs() > 1e-9
                    || matches!((known_t, t), (Some(a), Some(b)) if a != b);
                if differs {
                    let show = |t: Option<i64>, f: f64| {
                        format!("{f} ({} pieces)", t.map_or("?".into(), |t| t.to_string()))
                    };
                    return Err(MergeError::Threshold {
                        info_hash: hash,
                        path_a: opened[from].path.clone(),
                        a: show(known_t, known_frac),
                        path_b: input.path.clone(),
                        b: show(t, frac),
                    });
                }
                if known_t.is_none() && t.is_some() {
                    // The other run got the magnet's metadata.
                    tx.execute(
                        "UPDATE torrent SET pieces_count = ?2, piece_size = ?3, total_size = ?4,
                            complete_threshold = ?5 WHERE id = ?1",
                        params![id, r[3], r[4], r[5], r[6]],
                    )
                    .map_err(db(&out_path))?;
                    by_hash.insert(hash.clone(), (id, t, frac, i));
                }
                id
            } else {
                let id = i64::try_from(by_hash.len()).map_or(i64::MAX, |n| n + 1);
                tx.execute(
                    "INSERT INTO torrent (id, info_hash, name, pieces_count, piece_size,
                        total_size, complete_threshold, threshold, source, trackers, private,
                        added_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                    params![
                        id, r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11]
                    ],
                )
                .map_err(db(&out_path))?;
                by_hash.insert(hash, (id, t, frac, i));
                id
            };
            if let Some(old) = int(&r[0]) {
                map.insert(old, id);
            }
        }
        torrent_of.push(map);
    }

    let thresholds: HashMap<i64, Option<i64>> =
        by_hash.values().map(|&(id, t, _, _)| (id, t)).collect();

    // Peers: one per (torrent, keyed hash).
    let mut merged: HashMap<(i64, String), PeerRow> = HashMap::new();
    let mut order: Vec<(i64, String)> = Vec::new();
    let mut confirmed_in: Vec<u64> = Vec::new();
    for (i, input) in opened.iter().enumerate() {
        let sql = format!("SELECT id, {} FROM peer ORDER BY id", PEER_COLS.join(", "));
        let mut confirmed = 0;
        for r in rows(&input.conn, &sql).map_err(db(&input.path))? {
            let old_id = int(&r[0]).unwrap_or(0);
            let mut cols = r[1..].to_vec();
            let Some(&tid) = int(&cols[0]).and_then(|t| torrent_of[i].get(&t)) else {
                continue;
            };
            cols[0] = Value::Integer(tid);
            confirmed += u64::from(int(&cols[col("crossed_at")]).is_some());
            let key = match &cols[1] {
                Value::Text(k) => (tid, k.clone()),
                _ => continue,
            };
            if let Some(m) = merged.get_mut(&key) {
                combine(&mut m.cols, &cols).map_err(|what| MergeError::Refused {
                    path: input.path.clone(),
                    what: format!("peer row {old_id}: {what}"),
                })?;
                m.sources.push((i, old_id));
            } else {
                order.push(key.clone());
                merged.insert(
                    key,
                    PeerRow {
                        cols,
                        sources: vec![(i, old_id)],
                    },
                );
            }
        }
        confirmed_in.push(confirmed);
    }

    // Crossings no single host saw: replay every host's observations in time order.
    let mut across_hosts = 0;
    for key in &order {
        let Some(m) = merged.get_mut(key) else {
            continue;
        };
        if m.sources.len() < 2 || int(&m.cols[col("crossed_at")]).is_some() {
            continue;
        }
        let Some(Some(t)) = thresholds.get(&key.0) else {
            continue;
        };
        let threshold = u32::try_from(*t).unwrap_or(u32::MAX);
        let mut observations = Vec::new();
        for &(i, old) in &m.sources {
            observations.extend(visit_observations(&opened[i], old).map_err(db(&opened[i].path))?);
        }
        observations.sort_by_key(|o| o.0);
        let mut p = Progress::default();
        let mut how = None;
        for (at_ms, pieces, with_state, reason) in observations {
            p.success(&[(at_ms, pieces)], with_state, threshold);
            if p.crossed_at.is_some() && how.is_none() {
                how = Some(reason);
            }
        }
        if let Some(at) = p.crossed_at {
            m.cols[col("crossed_at")] = Value::Integer(at.div_euclid(1000));
            m.cols[col("crossed_strict")] = Value::Integer(i64::from(p.below_with_state));
            // Seen across hosts: never inside one visit; witnessed by the visit whose
            // observation crossed, predicted from the hosts' observations together.
            m.cols[col("crossed_how")] = how.flatten().map_or(Value::Null, Value::Text);
            m.cols[col("crossed_within")] = Value::Integer(0);
            m.cols[col("predicted_at")] = p
                .predicted_ms
                .map_or(Value::Null, |ms| Value::Integer(ms.div_euclid(1000)));
            across_hosts += 1;
        }
    }

    // Write the peers; remember each input peer's new id.
    let mut peer_of: Vec<HashMap<i64, i64>> = vec![HashMap::new(); opened.len()];
    let insert = format!(
        "INSERT INTO peer (id, {}) VALUES (?1, {})",
        PEER_COLS.join(", "),
        (2..=PEER_COLS.len() + 1)
            .map(|n| format!("?{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut confirmed = 0;
    for (n, key) in order.iter().enumerate() {
        let Some(m) = merged.get(key) else { continue };
        let id = i64::try_from(n).map_or(i64::MAX, |n| n + 1);
        let mut values = vec![Value::Integer(id)];
        values.extend(m.cols.iter().cloned());
        tx.execute(&insert, rusqlite::params_from_iter(values))
            .map_err(db(&out_path))?;
        confirmed += u64::from(int(&m.cols[col("crossed_at")]).is_some());
        for &(i, old) in &m.sources {
            peer_of[i].insert(old, id);
        }
    }

    // Visits, requests and statistic rows, with their run.
    for (i, input) in opened.iter().enumerate() {
        for table in ["visit", "request", "statistic"] {
            copy_rows(&input.conn, &tx, table, |column, v| match column {
                "peer_id" => int(&v)
                    .and_then(|p| peer_of[i].get(&p))
                    .map_or(Value::Null, |&p| Value::Integer(p)),
                "torrent_id" => int(&v)
                    .and_then(|t| torrent_of[i].get(&t))
                    .map_or(Value::Null, |&t| Value::Integer(t)),
                "run_id" => Value::Integer(
                    int(&v)
                        .and_then(|r| run_of[i].get(&r).copied())
                        .unwrap_or(default_run[i]),
                ),
                _ => v,
            })
            .map_err(db(&input.path))?;
        }
    }
    tx.commit().map_err(db(&out_path))?;
    Ok(MergeSummary {
        inputs: opened
            .iter()
            .zip(hosts)
            .zip(confirmed_in)
            .map(|((input, h), c)| (input.path.clone(), h, c))
            .collect(),
        torrents: by_hash.len(),
        peers: order.len(),
        confirmed,
        across_hosts,
    })
}

/// No run may come twice: a run is its `run_uid` (given at its start), or for runs from
/// before it host + start time + key check. A merged database carries the ids of its
/// runs, so merging it again with one of its inputs is refused too.
fn check_distinct_runs(inputs: &[Input]) -> Result<(), MergeError> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, input) in inputs.iter().enumerate() {
        let sql = if schema::has_column(&input.conn, "run", "run_uid") {
            "SELECT run_uid, hostname, started_at, key_check FROM run"
        } else {
            "SELECT NULL, hostname, started_at, key_check FROM run"
        };
        let runs = rows(&input.conn, sql).map_err(|source| MergeError::Db {
            path: input.path.clone(),
            source,
        })?;
        for r in runs {
            let text = |v: &Value| match v {
                Value::Text(t) => t.clone(),
                Value::Integer(n) => n.to_string(),
                _ => "-".into(),
            };
            let (key, what) = if let Value::Text(uid) = &r[0] {
                (format!("uid {uid}"), format!("run id {uid}"))
            } else {
                let (host, start, check) = (text(&r[1]), text(&r[2]), text(&r[3]));
                (
                    format!("old {host} {start} {check}"),
                    format!("host {host}, started at {start}, same key"),
                )
            };
            if let Some(&first) = seen.get(&key) {
                return Err(MergeError::SameRun {
                    path_a: inputs[first].path.clone(),
                    path_b: input.path.clone(),
                    what,
                });
            }
            seen.insert(key, i);
        }
    }
    Ok(())
}

/// Every run of every input must carry the same key check (the same `privacy.key`).
fn check_keys(inputs: &[Input]) -> Result<(), MergeError> {
    let mut first: Option<String> = None;
    for input in inputs {
        let checks: Vec<Option<String>> = rows(&input.conn, "SELECT key_check FROM run")
            .map_err(|source| MergeError::Db {
                path: input.path.clone(),
                source,
            })?
            .into_iter()
            .map(|r| match &r[0] {
                Value::Text(t) => Some(t.clone()),
                _ => None,
            })
            .collect();
        for check in checks {
            let Some(check) = check else {
                return Err(MergeError::Keys {
                    path: input.path.clone(),
                    what: "a random privacy key (privacy.key was empty)",
                });
            };
            match &first {
                None => first = Some(check),
                Some(f) if *f != check => {
                    return Err(MergeError::Keys {
                        path: input.path.clone(),
                        what: "another privacy key than the first run",
                    });
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

/// Folds another host's row of the same peer into `m`: first observation from the
/// earlier, last from the later, counts added (an overflow is refused), the earliest
/// crossing, descriptions from whichever has them.
fn combine(m: &mut [Value], other: &[Value]) -> Result<(), String> {
    let earlier = |a: &Value, b: &Value| int(b).unwrap_or(i64::MAX) < int(a).unwrap_or(i64::MAX);
    if earlier(&m[col("first_seen")], &other[col("first_seen")]) {
        for c in ["source", "first_seen", "first_pieces"] {
            m[col(c)] = other[col(c)].clone();
        }
    }
    if int(&other[col("last_seen")]) > int(&m[col("last_seen")]) {
        for c in [
            "last_seen",
            "last_pieces",
            "client",
            "client_version",
            "client_v",
        ] {
            if c.starts_with("last") || other[col(c)] != Value::Null {
                m[col(c)] = other[col(c)].clone();
            }
        }
    }
    for c in ["visits", "failed_visits", "visits_in"] {
        let (a, b) = (
            int(&m[col(c)]).unwrap_or(0),
            int(&other[col(c)]).unwrap_or(0),
        );
        let sum = a
            .checked_add(b)
            .ok_or_else(|| format!("{c}: {a} + {b} overflows"))?;
        m[col(c)] = Value::Integer(sum);
    }
    if let Some(s) = real(&other[col("max_speed")])
        && real(&m[col("max_speed")]).is_none_or(|have| s > have)
    {
        m[col("max_speed")] = Value::Real(s);
    }
    if earlier(&m[col("crossed_at")], &other[col("crossed_at")]) {
        for c in [
            "crossed_at",
            "crossed_strict",
            "crossed_how",
            "crossed_within",
            "predicted_at",
        ] {
            m[col(c)] = other[col(c)].clone();
        }
    }
    for c in [
        "client",
        "client_version",
        "client_v",
        "country",
        "continent",
        "city",
        "latitude",
        "longitude",
        "asn",
        "as_org",
        "network",
        "rdns_domain",
    ] {
        if m[col(c)] == Value::Null {
            m[col(c)] = other[col(c)].clone();
        }
    }
    Ok(())
}

/// A peer's observations (Unix ms, pieces, from a piece-state message) from the
/// successful visits of one input, as its run made them: the first piece-state message
/// and the end of each visit; the end with 0 pieces for state `none`; nothing for
/// `invalid`. Visit start times are whole seconds, so hosts are ordered to the second.
/// One observation replayed by merge: Unix ms, pieces, whether it came from a
/// piece-state message, and the reason of the visit that made it.
type Observation = (i64, u32, bool, Option<String>);

fn visit_observations(input: &Input, peer: i64) -> rusqlite::Result<Vec<Observation>> {
    let mut stmt = input.conn.prepare_cached(
        "SELECT started_at, duration_ms, state, first_pieces, first_state_ms, pieces, reason
         FROM visit WHERE peer_id = ?1 AND outcome = 'ok' ORDER BY started_at, id",
    )?;
    let visits = stmt.query_map([peer], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, Option<i64>>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, Option<i64>>(3)?,
            r.get::<_, Option<i64>>(4)?,
            r.get::<_, Option<i64>>(5)?,
            r.get::<_, Option<String>>(6)?,
        ))
    })?;
    let pieces = |p: i64| u32::try_from(p).unwrap_or(0);
    let mut out = Vec::new();
    for v in visits {
        let (started, duration, state, first, first_ms, end_pieces, reason) = v?;
        // The values were checked (times ≤ 2100, durations ≤ 2^31 ms): no overflow, but
        // never wrap if one slipped through.
        let start_ms = started.saturating_mul(1000);
        let end_ms = start_ms.saturating_add(duration.unwrap_or(0));
        match state.as_deref() {
            Some("invalid") => {}
            Some("none") | None => out.push((end_ms, 0, false, reason)),
            Some(_) => {
                if let (Some(p), Some(ms)) = (first, first_ms) {
                    out.push((start_ms + ms, pieces(p), true, reason.clone()));
                }
                if let Some(p) = end_pieces {
                    out.push((end_ms, pieces(p), true, reason));
                }
            }
        }
    }
    Ok(out)
}

/// Every row of `sql` as values.
fn rows(conn: &Connection, sql: &str) -> rusqlite::Result<Vec<Vec<Value>>> {
    let mut stmt = conn.prepare(sql)?;
    let n = stmt.column_count();
    stmt.query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())?
        .collect()
}

/// Copies `table` from `src` to `dst` (the columns both have, `id` renumbered), each
/// value passed through `remap(column, value)`; `run_id` is always written.
fn copy_rows(
    src: &Connection,
    dst: &Connection,
    table: &str,
    mut remap: impl FnMut(&str, Value) -> Value,
) -> rusqlite::Result<()> {
    let columns = |c: &Connection| -> rusqlite::Result<Vec<String>> {
        let mut stmt = c.prepare(&format!("PRAGMA table_info({table})"))?;
        stmt.query_map([], |r| r.get::<_, String>(1))?.collect()
    };
    let theirs = columns(src)?;
    let ours: Vec<String> = columns(dst)?
        .into_iter()
        .filter(|c| c != "id" && (theirs.contains(c) || c == "run_id"))
        .collect();
    let select: Vec<String> = ours
        .iter()
        .map(|c| {
            if theirs.contains(c) {
                c.clone()
            } else {
                "NULL".to_string()
            }
        })
        .collect();
    let mut read = src.prepare(&format!(
        "SELECT {} FROM {table} ORDER BY id",
        select.join(", ")
    ))?;
    let mut write = dst.prepare(&format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        ours.join(", "),
        (1..=ours.len())
            .map(|n| format!("?{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    ))?;
    let mut rows = read.query([])?;
    while let Some(row) = rows.next()? {
        let mut values = Vec::with_capacity(ours.len());
        for (i, c) in ours.iter().enumerate() {
            values.push(remap(c, row.get::<_, Value>(i)?));
        }
        write.execute(rusqlite::params_from_iter(values))?;
    }
    Ok(())
}
