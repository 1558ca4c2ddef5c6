//! `btda geo build-asn`: an ASN database (mmdb) from the ip-location-db CSV files
//! (`start_ip,end_ip,asn,organization` per line), with GeoLite2-ASN field names so that
//! either schema's reader works.

use std::io::BufRead;
use std::net::IpAddr;
use std::path::Path;

use mmdb_writer::{Value, Writer};

/// Splits one CSV line into fields (double quotes group, `""` is a quote).
fn fields(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                if let Some(f) = out.last_mut() {
                    f.push('"');
                }
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(String::new()),
            (c, _) => {
                if let Some(f) = out.last_mut() {
                    f.push(c);
                }
            }
        }
    }
    out
}

/// Builds the database from `csvs` into `output`; returns (ranges written, lines skipped).
pub fn build_asn(csvs: &[&Path], output: &Path) -> Result<(usize, usize), String> {
    let mut writer = Writer::new("btda-ASN (ip-location-db)");
    let (mut written, mut skipped) = (0, 0);
    for csv in csvs {
        let file = std::fs::File::open(csv).map_err(|e| format!("{}: {e}", csv.display()))?;
        for line in std::io::BufReader::new(file).lines() {
            let line = line.map_err(|e| format!("{}: {e}", csv.display()))?;
            let f = fields(&line);
            let parsed = (f.len() >= 4)
                .then(|| {
                    Some((
                        f[0].parse::<IpAddr>().ok()?,
                        f[1].parse::<IpAddr>().ok()?,
                        f[2].parse::<u32>().ok()?,
                    ))
                })
                .flatten();
            let Some((start, end, asn)) = parsed else {
                skipped += 1;
                continue;
            };
            let value = Value::Map(
                [
                    ("autonomous_system_number".to_string(), Value::U32(asn)),
                    (
                        "autonomous_system_organization".to_string(),
                        Value::String(f[3].clone()),
                    ),
                ]
                .into(),
            );
            match writer.insert_range(start, end, &value) {
                Ok(()) => written += 1,
                Err(_) => skipped += 1,
            }
        }
    }
    let bytes = writer.to_bytes().map_err(|e| e.to_string())?;
    std::fs::write(output, bytes).map_err(|e| format!("{}: {e}", output.display()))?;
    Ok((written, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_with_quotes() {
        assert_eq!(
            fields(r#"1.0.0.0,1.0.0.255,13335,"Cloudflare, Inc.""#),
            vec!["1.0.0.0", "1.0.0.255", "13335", "Cloudflare, Inc."]
        );
        assert_eq!(fields(r#"a,"say ""hi""",c"#), vec!["a", r#"say "hi""#, "c"]);
    }

    #[test]
    fn built_database_reads_back_through_geo() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("asn.csv");
        std::fs::write(&csv, "198.51.100.0,198.51.100.255,64500,\"Example, Net\"\nbad line\n2001:db8::,2001:db8::ffff,64501,Six\n").unwrap();
        let out = dir.path().join("asn.mmdb");
        assert_eq!(build_asn(&[&csv], &out).unwrap(), (2, 1));
        let geo = super::super::Geo::open(&[], &[out], false);
        let a = geo.lookup("198.51.100.9".parse().unwrap());
        assert_eq!(
            (a.asn, a.as_org.as_deref()),
            (Some(64500), Some("Example, Net"))
        );
        assert_eq!(geo.lookup("2001:db8::1".parse().unwrap()).asn, Some(64501));
    }
}
