//! What `btda merge` accepts from an input database. An input is a file anyone could
//! have written: its own schema may declare any column type, and SQLite stores text in
//! an integer column without complaint. Every value of the tables merge reads or copies
//! is checked against btda's own schema (the declared type, NOT NULL) and, for the
//! columns merge computes with, a plausible range; the first value that fails names
//! its table, row, column and value.

use std::collections::HashMap;

use rusqlite::Connection;
use rusqlite::types::Value;

/// Latest plausible Unix time (2100-01-01): times are seconds, never milliseconds.
const MAX_UNIX_SECS: i64 = 4_102_444_800;
/// More visits of one peer than a run of a year at one a second.
const MAX_COUNT: i64 = 1_000_000_000;

/// The range a column's numbers must lie in, where merge computes with it.
fn range(column: &str) -> Option<(f64, f64)> {
    let r = match column {
        "started_at" | "ended_at" | "first_seen" | "last_seen" | "crossed_at" | "predicted_at"
        | "at" | "added_at" => (0.0, MAX_UNIX_SECS as f64),
        "visits" | "failed_visits" | "visits_in" | "attempt" => (0.0, MAX_COUNT as f64),
        "first_pieces" | "last_pieces" | "pieces" | "pieces_count" | "complete_threshold" => {
            (0.0, f64::from(u32::MAX))
        }
        "duration_ms" | "first_state_ms" | "connect_ms" | "handshake_ms" => {
            (0.0, f64::from(i32::MAX))
        }
        "crossed_strict" | "crossed_within" | "private" => (0.0, 1.0),
        "threshold" => (0.0, 1.0),
        "latitude" => (-90.0, 90.0),
        "longitude" => (-180.0, 180.0),
        "max_speed" => (0.0, 1e15),
        "id" | "peer_id" | "torrent_id" | "run_id" => (0.0, i64::MAX as f64),
        _ => return None,
    };
    Some(r)
}

/// A column of btda's schema: its declared type and whether it may be NULL.
#[derive(Debug, Clone)]
struct Column {
    kind: Kind,
    not_null: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Integer,
    Real,
    Text,
    Any,
}

/// btda's schema, column by column, to check input rows against.
#[derive(Debug)]
pub(super) struct Expected {
    tables: HashMap<String, HashMap<String, Column>>,
}

impl Expected {
    /// Reads the declared columns of `tables` from `ours` (a database with btda's
    /// schema: the merge's output).
    pub(super) fn read(ours: &Connection, tables: &[&str]) -> rusqlite::Result<Self> {
        let mut out = HashMap::new();
        for table in tables {
            let mut stmt = ours.prepare(&format!("PRAGMA table_info({table})"))?;
            let cols = stmt
                .query_map([], |r| {
                    let name: String = r.get(1)?;
                    let decl: String = r.get(2)?;
                    let not_null: bool = r.get(3)?;
                    let kind = match decl.to_ascii_uppercase().as_str() {
                        "INTEGER" => Kind::Integer,
                        "REAL" => Kind::Real,
                        "TEXT" => Kind::Text,
                        _ => Kind::Any,
                    };
                    Ok((name, Column { kind, not_null }))
                })?
                .collect::<rusqlite::Result<HashMap<_, _>>>()?;
            out.insert((*table).to_string(), cols);
        }
        Ok(Self { tables: out })
    }

    /// Checks one value of `table.column`; `Err` says what is wrong with it.
    pub(super) fn check(&self, table: &str, column: &str, v: &Value) -> Result<(), String> {
        let Some(c) = self.tables.get(table).and_then(|t| t.get(column)) else {
            return Ok(()); // not a column btda has: not read
        };
        let number = match (c.kind, v) {
            (_, Value::Null) if c.not_null => return Err("NULL where a value is required".into()),
            (_, Value::Null) => return Ok(()),
            (Kind::Integer, Value::Integer(i)) => *i as f64,
            (Kind::Real, Value::Integer(i)) => *i as f64,
            (Kind::Real, Value::Real(r)) if r.is_finite() => *r,
            (Kind::Text, Value::Text(_)) | (Kind::Any, _) => return Ok(()),
            (kind, other) => {
                return Err(format!(
                    "{} where {} is expected",
                    describe(other),
                    match kind {
                        Kind::Integer => "an integer",
                        Kind::Real => "a number",
                        Kind::Text => "text",
                        Kind::Any => "a value",
                    }
                ));
            }
        };
        match range(column) {
            Some((lo, hi)) if !(lo..=hi).contains(&number) => {
                Err(format!("{} is out of range {lo}..={hi}", describe(v)))
            }
            _ => Ok(()),
        }
    }

    /// Checks every row of `table` in `input` (the columns both have); `Err` names the
    /// first value refused.
    pub(super) fn check_table(&self, input: &Connection, table: &str) -> Result<(), String> {
        let theirs: Vec<String> = {
            let mut stmt = input
                .prepare(&format!("PRAGMA table_info({table})"))
                .map_err(|e| e.to_string())?;
            stmt.query_map([], |r| r.get::<_, String>(1))
                .and_then(Iterator::collect)
                .map_err(|e| e.to_string())?
        };
        let Some(ours) = self.tables.get(table) else {
            return Ok(());
        };
        let cols: Vec<&String> = theirs.iter().filter(|c| ours.contains_key(*c)).collect();
        if cols.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "SELECT rowid, {} FROM {table}",
            cols.iter()
                .map(|c| format!("\"{c}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut stmt = input.prepare(&sql).map_err(|e| e.to_string())?;
        let mut rows = stmt.query([]).map_err(|e| e.to_string())?;
        while let Some(row) = rows.next().map_err(|e| e.to_string())? {
            let rowid: i64 = row.get(0).map_err(|e| e.to_string())?;
            for (i, c) in cols.iter().enumerate() {
                let v: Value = row.get(i + 1).map_err(|e| e.to_string())?;
                self.check(table, c, &v)
                    .map_err(|why| format!("{table} row {rowid}, {c}: {why}"))?;
            }
        }
        Ok(())
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Integer(i) => i.to_string(),
        Value::Real(r) => r.to_string(),
        Value::Text(t) => {
            let short: String = t.chars().take(40).collect();
            format!("text {short:?}")
        }
        Value::Blob(b) => format!("a blob of {} bytes", b.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected() -> Expected {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(crate::store::schema::SCHEMA).unwrap();
        Expected::read(&conn, &["peer", "run", "visit"]).unwrap()
    }

    #[test]
    fn types_nulls_and_ranges_are_checked() {
        let e = expected();
        assert!(e.check("peer", "visits", &Value::Integer(3)).is_ok());
        let huge = e.check("peer", "visits", &Value::Integer(9_000_000_000_000_000_000));
        assert!(huge.unwrap_err().contains("out of range"));
        let text = e.check("peer", "visits", &Value::Text("many".into()));
        assert!(text.unwrap_err().contains("where an integer is expected"));
        assert!(e.check("peer", "crossed_at", &Value::Integer(-1)).is_err());
        assert!(e.check("peer", "crossed_at", &Value::Null).is_ok());
        assert!(e.check("peer", "latitude", &Value::Real(f64::NAN)).is_err());
        assert!(e.check("peer", "latitude", &Value::Real(48.2)).is_ok());
        assert!(
            e.check("run", "hostname", &Value::Null).is_err(),
            "NOT NULL"
        );
        assert!(e.check("run", "hostname", &Value::Integer(5)).is_err());
        assert!(
            e.check("visit", "no_such_column", &Value::Integer(5))
                .is_ok()
        );
    }

    #[test]
    fn a_table_check_names_the_row_and_column() {
        let e = expected();
        let input = Connection::open_in_memory().unwrap();
        input
            .execute_batch(
                "CREATE TABLE peer (id INTEGER PRIMARY KEY, visits, peer_key TEXT);
                 INSERT INTO peer VALUES (1, 2, 'a');
                 INSERT INTO peer VALUES (2, 'x', 'b');",
            )
            .unwrap();
        let err = e.check_table(&input, "peer").unwrap_err();
        assert!(err.starts_with("peer row 2, visits: text"), "{err}");
    }
}
