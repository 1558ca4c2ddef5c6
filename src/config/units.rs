//! How typed configuration values are written in TOML.
//!
//! The file keeps plain numbers and strings (`connect_timeout_ms = 5000`,
//! `listen_address = "0.0.0.0"`); these adapters turn them into `Duration`, `IpAddr` and
//! `InfoHash` while the file is read, so every subsystem receives typed values and a bad
//! address is refused with its key and line before anything starts.

use std::net::IpAddr;
use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

use crate::torrent::InfoHash;

fn millis(d: &Duration) -> u64 {
    crate::clock::millis(*d)
}

/// A whole number of milliseconds (`*_ms` keys).
pub(super) mod ms {
    use super::*;

    /// Writes the duration as milliseconds.
    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(millis(d))
    }

    /// Reads milliseconds.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// A whole number of seconds (`*_secs` keys).
pub(super) mod secs {
    use super::*;

    /// Writes the duration as seconds.
    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    /// Reads seconds.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// A list of milliseconds.
pub(super) mod ms_list {
    use super::*;

    /// Writes each duration as milliseconds.
    pub(crate) fn serialize<S: Serializer>(v: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(millis))
    }

    /// Reads a list of milliseconds.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        Vec::<u64>::deserialize(d).map(|v| v.into_iter().map(Duration::from_millis).collect())
    }
}

/// A list of seconds.
pub(super) mod secs_list {
    use super::*;

    /// Writes each duration as seconds.
    pub(crate) fn serialize<S: Serializer>(v: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(Duration::as_secs))
    }

    /// Reads a list of seconds.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        Vec::<u64>::deserialize(d).map(|v| v.into_iter().map(Duration::from_secs).collect())
    }
}

/// An IP address written as text.
pub(super) mod ip {
    use super::*;

    /// Writes the address as text.
    pub(crate) fn serialize<S: Serializer>(ip: &IpAddr, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(ip)
    }

    /// Reads an address; anything else is refused with the text.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<IpAddr, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|_| D::Error::custom(format!("{text:?} must be an IP address")))
    }
}

/// An IP address or `""` for "none given".
pub(super) mod optional_ip {
    use super::*;

    /// Writes the address, or `""`.
    pub(crate) fn serialize<S: Serializer>(ip: &Option<IpAddr>, s: S) -> Result<S::Ok, S::Error> {
        match ip {
            Some(ip) => s.collect_str(ip),
            None => s.serialize_str(""),
        }
    }

    /// Reads an address or `""`.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpAddr>, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Ok(None);
        }
        text.parse()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("{text:?} must be an IP address or empty")))
    }
}

/// An info-hash as 40 hex or 32 base32 characters.
pub(super) mod info_hash {
    use super::*;

    /// Writes the hash as lowercase hex.
    pub(crate) fn serialize<S: Serializer>(h: &InfoHash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&h.to_hex())
    }

    /// Reads a hash; anything else is refused with the text.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<InfoHash, D::Error> {
        let text = String::deserialize(d)?;
        InfoHash::parse(&text).map_err(|_| {
            D::Error::custom(format!("{text:?} must be 40 hex or 32 base32 characters"))
        })
    }
}

/// A timeout: `"auto"` (measured from the run) or a whole number of milliseconds.
pub(super) mod timeout {
    use super::*;
    use crate::config::Timeout;

    /// Writes `"auto"` or the milliseconds.
    pub(crate) fn serialize<S: Serializer>(t: &Timeout, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Timeout::Auto => s.serialize_str("auto"),
            Timeout::Fixed(d) => s.serialize_u64(millis(d)),
        }
    }

    /// Reads `"auto"` or milliseconds.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timeout, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Ms(u64),
            Text(String),
        }
        match Written::deserialize(d)? {
            Written::Ms(ms) => Ok(Timeout::Fixed(Duration::from_millis(ms))),
            Written::Text(t) if t == "auto" => Ok(Timeout::Auto),
            Written::Text(t) => Err(D::Error::custom(format!(
                "{t:?} must be \"auto\" or a number of milliseconds"
            ))),
        }
    }
}
