//! Magnet links (BEP 9): `xt=urn:btih:`, `dn`, every `tr`, every `x.pe`.
//!
//! Only parsing and validation live here; fetching the metadata over ut_metadata is the
//! job of the peer layer.

use super::info_hash::InfoHash;
use super::metainfo::dedup_urls;

/// A parsed magnet link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Magnet {
    /// The v1 info-hash from `xt=urn:btih:`.
    pub info_hash: InfoHash,
    /// Display name (`dn`), if given.
    pub name: Option<String>,
    /// Every `tr` tracker URL, de-duplicated, in order.
    pub trackers: Vec<String>,
    /// Every `x.pe` peer address (`host:port`, `a.b.c.d:port` or `[v6]:port`).
    pub peers: Vec<String>,
}

/// Why a magnet link was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(super) enum MagnetError {
    /// Not a `magnet:?` URI at all.
    #[error("not a magnet link (must start with `magnet:?`)")]
    NotMagnet,
    /// No `xt=urn:btih:` parameter.
    #[error("no `xt=urn:btih:` parameter{0}")]
    NoBtih(&'static str),
    /// The hash text has the wrong length or alphabet.
    #[error(transparent)]
    BadHash(#[from] super::info_hash::BadInfoHash),
    /// Two different `urn:btih` hashes in one link.
    #[error("two different `urn:btih` hashes in one link")]
    Conflicting,
    /// An `x.pe` value that is not `host:port`.
    #[error("`x.pe` value {0:?} is not host:port with a port from 1 to 65535")]
    BadPeer(String),
}

/// Parses one magnet link.
pub(super) fn parse(link: &str) -> Result<Magnet, MagnetError> {
    let link = link.trim();
    let url = url::Url::parse(link).map_err(|_| MagnetError::NotMagnet)?;
    if url.scheme() != "magnet" || url.query().is_none() {
        return Err(MagnetError::NotMagnet);
    }
    let mut hash: Option<InfoHash> = None;
    let mut saw_btmh = false;
    let mut magnet = Magnet {
        info_hash: InfoHash([0; 20]),
        name: None,
        trackers: Vec::new(),
        peers: Vec::new(),
    };
    // BEP 9 allows numbered keys (`tr.1`, `xt.1`); treat them like the plain key.
    for (key, value) in url.query_pairs() {
        let key = match key.as_ref() {
            "x.pe" => "x.pe",
            other => other.split('.').next().unwrap_or(other),
        };
        match key {
            "xt" => {
                if let Some(text) = strip_prefix_ci(&value, "urn:btih:") {
                    let h = InfoHash::parse(text)?;
                    if hash.is_some_and(|old| old != h) {
                        return Err(MagnetError::Conflicting);
                    }
                    hash = Some(h);
                } else if strip_prefix_ci(&value, "urn:btmh:").is_some() {
                    saw_btmh = true;
                }
            }
            "dn" => magnet.name = Some(value.trim().to_string()).filter(|n| !n.is_empty()),
            "tr" => magnet.trackers.push(value.trim().to_string()),
            "x.pe" => magnet.peers.push(check_peer(value.trim())?),
            _ => {}
        }
    }
    magnet.info_hash = hash.ok_or(MagnetError::NoBtih(if saw_btmh {
        " (only a v2 `urn:btmh` hash; btda analyses v1 swarms)"
    } else {
        ""
    }))?;
    magnet.trackers = dedup_urls(std::mem::take(&mut magnet.trackers));
    Ok(magnet)
}

fn strip_prefix_ci<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &value[prefix.len()..])
}

/// Accepts `host:port`, `ipv4:port` and `[ipv6]:port`; returns it unchanged.
fn check_peer(text: &str) -> Result<String, MagnetError> {
    let bad = || MagnetError::BadPeer(text.to_string());
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && !host.contains([':', '/', ' '])
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
    };
    if port == 0 || !host_ok {
        return Err(bad());
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "16a2086eb3764bacf638fccb111805517aa2006c";

    #[test]
    fn full_link() {
        let link = format!(
            "magnet:?xt=urn:btih:{}&dn=Some%20Name&tr=http%3A%2F%2Ft1%2Fannounce&tr=udp://t2:80&tr=udp://t2:80&x.pe=127.0.0.2:6881&x.pe=[::1]:51413",
            HEX.to_uppercase()
        );
        let m = parse(&link).unwrap();
        assert_eq!(m.info_hash.to_hex(), HEX);
        assert_eq!(m.name.as_deref(), Some("Some Name"));
        assert_eq!(m.trackers, vec!["http://t1/announce", "udp://t2:80"]);
        assert_eq!(m.peers, vec!["127.0.0.2:6881", "[::1]:51413"]);
    }

    #[test]
    fn base32_hash() {
        let hash = InfoHash::parse(HEX).unwrap();
        let b32 = data_encoding::BASE32.encode(&hash.0);
        let m = parse(&format!("magnet:?xt=urn:btih:{b32}")).unwrap();
        assert_eq!(m.info_hash, hash);
        assert!(m.trackers.is_empty() && m.peers.is_empty() && m.name.is_none());
    }

    #[test]
    fn numbered_keys_count() {
        let m = parse(&format!(
            "magnet:?xt.1=urn:btih:{HEX}&tr.1=u://a&tr.2=u://b"
        ))
        .unwrap();
        assert_eq!(m.trackers, vec!["u://a", "u://b"]);
    }

    #[test]
    fn refusals() {
        assert_eq!(
            parse("http://x/?xt=urn:btih:1"),
            Err(MagnetError::NotMagnet)
        );
        assert_eq!(parse("magnet:?dn=x"), Err(MagnetError::NoBtih("")));
        assert!(matches!(
            parse("magnet:?xt=urn:btmh:1220abcd"),
            Err(MagnetError::NoBtih(s)) if s.contains("v2")
        ));
        assert!(matches!(
            parse("magnet:?xt=urn:btih:abc"),
            Err(MagnetError::BadHash(_))
        ));
        assert!(matches!(
            parse(&format!("magnet:?xt=urn:btih:{HEX}&x.pe=nope")),
            Err(MagnetError::BadPeer(_))
        ));
        assert!(matches!(
            parse(&format!("magnet:?xt=urn:btih:{HEX}&x.pe=1.2.3.4:0")),
            Err(MagnetError::BadPeer(_))
        ));
        let other = "0".repeat(40);
        assert_eq!(
            parse(&format!("magnet:?xt=urn:btih:{HEX}&xt=urn:btih:{other}")),
            Err(MagnetError::Conflicting)
        );
    }
}
