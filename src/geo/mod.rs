//! Geolocation and ISP of peers from MaxMind-format databases (maxminddb).
//!
//! Two schemas are read, chosen from the database metadata: MaxMind's GeoIP2/GeoLite2
//! (City and ASN) and the flat layout of the ip-location-db packages (DB-IP Lite City:
//! `country_code`, `city`, `latitude`/`longitude` as f32; the continent then comes from a
//! table of country codes). A missing or unreadable database disables only its part.

pub mod build;
mod continents;
pub mod rdns;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb::{Reader, geoip2};
use serde::Deserialize;

/// What the databases say about one address: the `peer` row's location columns,
/// defined with the rows.
pub use crate::store::records::GeoInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Schema {
    MaxMind,
    Flat,
}

/// The flat DB-IP Lite City record of ip-location-db.
#[derive(Deserialize)]
struct FlatCity<'a> {
    country_code: Option<&'a str>,
    city: Option<&'a str>,
    latitude: Option<f32>,
    longitude: Option<f32>,
}

struct Db {
    reader: Reader<Vec<u8>>,
    schema: Schema,
    description: String,
}

/// The open databases.
#[derive(Default)]
pub struct Geo {
    city: Vec<Db>,
    asn: Vec<Db>,
    store_city: bool,
}

fn open(path: &Path) -> Option<Db> {
    let reader = match Reader::open_readfile(path) {
        Ok(r) => r,
        Err(e) => {
            if path.exists() {
                log::warn!("geo: cannot read {}: {e}", path.display());
            }
            return None;
        }
    };
    let kind = reader.metadata().database_type.clone();
    let schema = if kind.starts_with("GeoIP2") || kind.starts_with("GeoLite2") {
        Schema::MaxMind
    } else {
        Schema::Flat
    };
    let built =
        crate::clock::format_utc(i64::try_from(reader.metadata().build_epoch).unwrap_or(i64::MAX));
    let description = format!(
        "{kind} built {built} ({})",
        path.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    );
    Some(Db {
        reader,
        schema,
        description,
    })
}

/// Rounds to 4 decimals (about 11 m): the databases' own precision is far coarser, and
/// f32 values of the flat schema would otherwise print as 51.514202117919922.
fn round(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

impl Geo {
    /// Opens the city and ASN databases that exist among `city` and `asn` (several files
    /// each: DB-IP has one per address family). Missing ones are skipped; if none of a
    /// kind opens, that part is off with one warning.
    pub fn open(city: &[PathBuf], asn: &[PathBuf], store_city: bool) -> Self {
        let geo = Self {
            city: city.iter().filter_map(|p| open(p)).collect(),
            asn: asn.iter().filter_map(|p| open(p)).collect(),
            store_city,
        };
        if geo.city.is_empty() {
            log::warn!("geo: no city database found; peers get no location (see `make geodata`)");
        }
        if geo.asn.is_empty() {
            log::warn!("geo: no ASN database found; peers get no ISP (see `make geodata`)");
        }
        geo
    }

    /// Descriptions of the city and ASN databases in use, for the `run` row.
    pub fn describe(&self) -> (Option<String>, Option<String>) {
        let join = |dbs: &[Db]| {
            (!dbs.is_empty()).then(|| {
                dbs.iter()
                    .map(|d| d.description.clone())
                    .collect::<Vec<_>>()
                    .join("; ")
            })
        };
        (join(&self.city), join(&self.asn))
    }

    /// Looks an address up (IPv4-mapped IPv6 addresses are normalised first).
    pub fn lookup(&self, ip: IpAddr) -> GeoInfo {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let mut info = GeoInfo::default();
        for db in &self.city {
            let Ok(found) = db.reader.lookup(ip) else {
                continue;
            };
            match db.schema {
                Schema::MaxMind => {
                    if let Ok(Some(c)) = found.decode::<geoip2::City>() {
                        info.country = c.country.iso_code.map(str::to_string);
                        info.continent = c.continent.code.map(str::to_string);
                        info.city = c.city.names.english.map(str::to_string);
                        info.latitude = c.location.latitude.map(round);
                        info.longitude = c.location.longitude.map(round);
                    }
                }
                Schema::Flat => {
                    if let Ok(Some(c)) = found.decode::<FlatCity<'_>>() {
                        info.country = c.country_code.map(str::to_string);
                        info.continent = c
                            .country_code
                            .and_then(continents::of_country)
                            .map(str::to_string);
                        info.city = c.city.map(str::to_string);
                        info.latitude = c.latitude.map(|v| round(f64::from(v)));
                        info.longitude = c.longitude.map(|v| round(f64::from(v)));
                    }
                }
            }
            if info.country.is_some() {
                break;
            }
        }
        if !self.store_city {
            info.city = None;
        }
        for db in &self.asn {
            if let Ok(Some(a)) = db.reader.lookup(ip).and_then(|f| f.decode::<geoip2::Asn>()) {
                info.asn = a.autonomous_system_number;
                info.as_org = a.autonomous_system_organization.map(str::to_string);
                break;
            }
        }
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/geo")
    }

    fn geo(store_city: bool) -> Geo {
        Geo::open(
            &[
                fixtures().join("GeoIP2-City-Test.mmdb"),
                fixtures().join("missing.mmdb"),
            ],
            &[fixtures().join("GeoLite2-ASN-Test.mmdb")],
            store_city,
        )
    }

    #[test]
    fn maxmind_test_databases_give_real_answers() {
        let g = geo(true);
        let london = g.lookup("81.2.69.160".parse().unwrap());
        assert_eq!(
            (
                london.country.as_deref(),
                london.continent.as_deref(),
                london.city.as_deref()
            ),
            (Some("GB"), Some("EU"), Some("London"))
        );
        assert!(london.latitude.is_some_and(|l| (l - 51.5142).abs() < 0.01));
        let linkoping = g.lookup("89.160.20.128".parse().unwrap());
        assert_eq!(
            (linkoping.country.as_deref(), linkoping.city.as_deref()),
            (Some("SE"), Some("Linköping"))
        );
        assert_eq!(
            g.lookup("2001:218::1".parse().unwrap()).country.as_deref(),
            Some("JP")
        );
        let asn = g.lookup("1.128.0.1".parse().unwrap());
        assert_eq!(asn.asn, Some(1221));
        assert!(asn.as_org.is_some());
        // IPv4-mapped IPv6 is the same address.
        assert_eq!(
            g.lookup("::ffff:81.2.69.160".parse().unwrap())
                .country
                .as_deref(),
            Some("GB")
        );
        // No data: all empty, no error.
        assert_eq!(g.lookup("127.0.0.1".parse().unwrap()), GeoInfo::default());
        let (city, asn_db) = g.describe();
        assert!(city.unwrap().starts_with("GeoIP2-City"));
        assert!(asn_db.unwrap().starts_with("GeoLite2-ASN"));
    }

    #[test]
    fn the_flat_db_ip_schema_with_ipv4_ipv6_and_mapped_lookups() {
        use mmdb_writer::{Value, Writer};
        let record = |cc: &str, city: &str, lat: f32, lon: f32| {
            Value::Map(
                [
                    ("country_code".to_string(), Value::String(cc.into())),
                    ("city".to_string(), Value::String(city.into())),
                    ("latitude".to_string(), Value::Float(lat)),
                    ("longitude".to_string(), Value::Float(lon)),
                ]
                .into(),
            )
        };
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::new("DBIP-City-Lite");
        w.insert_range(
            "198.51.100.0".parse().unwrap(),
            "198.51.100.255".parse().unwrap(),
            &record("DE", "Berlin", 52.524, 13.411),
        )
        .unwrap();
        w.insert_range(
            "2001:db8::".parse().unwrap(),
            "2001:db8::ffff".parse().unwrap(),
            &record("BR", "Recife", -8.054, -34.881),
        )
        .unwrap();
        let path = dir.path().join("dbip-city.mmdb");
        std::fs::write(&path, w.to_bytes().unwrap()).unwrap();
        let g = Geo::open(&[path], &[], true);
        let v4 = g.lookup("198.51.100.7".parse().unwrap());
        assert_eq!(
            (
                v4.country.as_deref(),
                v4.continent.as_deref(),
                v4.city.as_deref()
            ),
            (Some("DE"), Some("EU"), Some("Berlin"))
        );
        assert_eq!(
            (v4.latitude, v4.longitude),
            (Some(52.524), Some(13.411)),
            "f32 rounded to the database's precision"
        );
        let v6 = g.lookup("2001:db8::42".parse().unwrap());
        assert_eq!(
            (v6.country.as_deref(), v6.continent.as_deref()),
            (Some("BR"), Some("SA"))
        );
        assert_eq!(
            g.lookup("::ffff:198.51.100.7".parse().unwrap())
                .country
                .as_deref(),
            Some("DE")
        );
        assert!(g.describe().0.unwrap().starts_with("DBIP-City-Lite"));
    }

    #[test]
    fn city_is_off_by_default_and_missing_databases_disable_their_part() {
        assert_eq!(geo(false).lookup("81.2.69.160".parse().unwrap()).city, None);
        let none = Geo::open(&[fixtures().join("nope.mmdb")], &[], false);
        assert_eq!(
            none.lookup("81.2.69.160".parse().unwrap()),
            GeoInfo::default()
        );
        assert_eq!(none.describe(), (None, None));
    }
}
