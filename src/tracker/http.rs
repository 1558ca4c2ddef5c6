//! HTTP tracker protocol, sans-IO: announce URLs (BEP 3, BEP 23 compact, BEP 7 peers6),
//! announce and scrape responses, and scrape URLs (BEP 48).

use std::net::{IpAddr, SocketAddr};

use super::{AnnounceParams, AnnounceReply, ScrapeCounts, ScrapeReply, TrackerError};
use crate::torrent::InfoHash;
use crate::torrent::bencode::{self, Dict, as_bytes, list_items};
use crate::wire::compact::{decode_v4 as compact_v4, decode_v6 as compact_v6};

/// Nesting limit for tracker responses (flat dictionaries and peer lists).
const MAX_DEPTH: usize = 8;
/// Peers kept from one response.
pub(super) const MAX_PEERS: usize = 2000;

/// Percent-encodes every byte outside RFC 3986's unreserved set. Never `+` for a space:
/// trackers decode the info-hash byte by byte and reject `+`.
pub(super) fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The full announce URL for `base` (which may already carry a query, e.g. a passkey).
pub(super) fn announce_url(base: &str, p: &AnnounceParams) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    let mut url = format!(
        "{base}{sep}info_hash={}&peer_id={}&port={}&uploaded={}&downloaded={}&left={}&compact=1&numwant={}&key={:08x}",
        percent_encode(&p.info_hash.0),
        percent_encode(&p.peer_id),
        p.port,
        p.uploaded,
        p.downloaded,
        p.left,
        p.numwant,
        p.key
    );
    if let Some(event) = p.event.as_str() {
        url.push_str("&event=");
        url.push_str(event);
    }
    url
}

/// BEP 48: the scrape URL replaces `announce` at the start of the last path segment; a
/// tracker whose announce URL has no such segment does not support scrape.
pub(super) fn scrape_url(announce: &str) -> Option<String> {
    let (path_end, query) = match announce.find('?') {
        Some(i) => (i, &announce[i..]),
        None => (announce.len(), ""),
    };
    let path = &announce[..path_end];
    let slash = path.rfind('/')?;
    let last = &path[slash + 1..];
    let rest = last.strip_prefix("announce")?;
    Some(format!("{}/scrape{rest}{query}", &path[..slash]))
}

/// The scrape URL for several torrents at once (repeated `info_hash`).
pub(super) fn scrape_url_for(scrape: &str, hashes: &[InfoHash]) -> String {
    let mut url = scrape.to_string();
    for (i, h) in hashes.iter().enumerate() {
        let sep = if i == 0 && !scrape.contains('?') {
            '?'
        } else {
            '&'
        };
        url.push(sep);
        url.push_str("info_hash=");
        url.push_str(&percent_encode(&h.0));
    }
    url
}

fn count(d: &Dict<'_, '_>, key: &str) -> Option<u32> {
    d.int(key)
        .ok()
        .flatten()
        .and_then(|n| u32::try_from(n).ok())
}

/// Decodes a tracker response and hands its top-level dictionary to `read`; a
/// `failure reason` becomes [`TrackerError::Failure`] first.
fn with_response<T>(
    body: &[u8],
    read: impl FnOnce(&Dict<'_, '_>) -> Result<T, TrackerError>,
) -> Result<T, TrackerError> {
    let value =
        bencode::decode(body, MAX_DEPTH).map_err(|e| TrackerError::Malformed(e.to_string()))?;
    let d = Dict::new(&value, "")
        .map_err(|_| TrackerError::Malformed("response is not a dictionary".into()))?;
    if let Some(reason) = d.bytes("failure reason").ok().flatten() {
        return Err(TrackerError::Failure(
            String::from_utf8_lossy(reason).chars().take(200).collect(),
        ));
    }
    read(&d)
}

/// Parses an announce response body.
pub(super) fn parse_announce(body: &[u8]) -> Result<AnnounceReply, TrackerError> {
    with_response(body, read_announce)
}

fn read_announce(d: &Dict<'_, '_>) -> Result<AnnounceReply, TrackerError> {
    let mut peers = Vec::new();
    match d.get("peers") {
        Some(v) => {
            if let Some(bytes) = as_bytes(v) {
                peers.extend(compact_v4(bytes));
            } else if let Some(list) = list_items(v) {
                peers.extend(list.into_iter().filter_map(dict_peer));
            } else {
                return Err(TrackerError::Malformed(
                    "`peers` is neither a string nor a list".into(),
                ));
            }
        }
        None if d.get("peers6").is_none() => {
            return Err(TrackerError::Malformed("no `peers` in the response".into()));
        }
        None => {}
    }
    if let Some(v6) = d
        .bytes("peers6")
        .map_err(|e| TrackerError::Malformed(e.to_string()))?
    {
        peers.extend(compact_v6(v6));
    }
    let dropped_peers = super::cap_peers(&mut peers, MAX_PEERS);
    let secs = |key| {
        d.int(key)
            .ok()
            .flatten()
            .and_then(|n| u64::try_from(n).ok())
    };
    Ok(AnnounceReply {
        interval: secs("interval"),
        min_interval: secs("min interval"),
        dropped_peers,
        seeders: count(d, "complete"),
        leechers: count(d, "incomplete"),
        completed: count(d, "downloaded"),
        peers,
        warning: d
            .bytes("warning message")
            .ok()
            .flatten()
            .map(|w| String::from_utf8_lossy(w).chars().take(200).collect()),
        external_ip: d
            .bytes("external ip")
            .ok()
            .flatten()
            .and_then(|b| match b.len() {
                4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
                16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
                _ => None,
            }),
    })
}

/// A non-compact peer: `{ip: "1.2.3.4", port: 6881, …}`.
fn dict_peer(v: &bencode::Value<'_>) -> Option<SocketAddr> {
    let d = Dict::new(v, "peer").ok()?;
    let ip: IpAddr = std::str::from_utf8(d.bytes("ip").ok()??)
        .ok()?
        .parse()
        .ok()?;
    let port = u16::try_from(d.int("port").ok()??).ok()?;
    Some(SocketAddr::new(ip, port))
}

/// Parses a scrape response: counts for each requested hash the tracker knows, and
/// BEP 48's `flags.min_request_interval` (a malformed or negative one is ignored).
pub(super) fn parse_scrape(body: &[u8], hashes: &[InfoHash]) -> Result<ScrapeReply, TrackerError> {
    with_response(body, |d| {
        let files = d
            .dict("files")
            .map_err(|e| TrackerError::Malformed(e.to_string()))?
            .ok_or_else(|| TrackerError::Malformed("no `files` in the scrape response".into()))?;
        let min_request_interval = d
            .dict("flags")
            .ok()
            .flatten()
            .and_then(|f| f.int("min_request_interval").ok().flatten())
            .and_then(|s| u64::try_from(s).ok());
        let counts = hashes
            .iter()
            .filter_map(|h| {
                let entry = files.get_raw(&h.0)?;
                let e = Dict::new(entry, "file").ok()?;
                Some((
                    *h,
                    ScrapeCounts {
                        seeders: count(&e, "complete"),
                        leechers: count(&e, "incomplete"),
                        completed: count(&e, "downloaded"),
                    },
                ))
            })
            .collect();
        Ok(ScrapeReply {
            counts,
            min_request_interval,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::Event;

    fn params(event: Event) -> AnnounceParams {
        AnnounceParams {
            info_hash: InfoHash(*b"\x12\x34 +/?&=\xff\x00abcdefghij"),
            peer_id: *b"-BD0100-abcdefghijkl",
            port: 6881,
            uploaded: 0,
            downloaded: 500,
            left: 500,
            numwant: 200,
            key: 0xdead_beef,
            event,
        }
    }

    #[test]
    fn announce_url_encodes_every_byte_and_never_plus() {
        let url = announce_url("http://127.0.0.1:6969/announce", &params(Event::Started));
        assert!(url.starts_with("http://127.0.0.1:6969/announce?info_hash=%124%20%2B%2F%3F%26%3D%FF%00abcdefghij&peer_id=-BD0100-abcdefghijkl&port=6881"), "{url}");
        assert!(url.contains(
            "&uploaded=0&downloaded=500&left=500&compact=1&numwant=200&key=deadbeef&event=started"
        ));
        let none = announce_url("http://t/announce?passkey=x", &params(Event::None));
        assert!(
            none.starts_with("http://t/announce?passkey=x&info_hash=") && !none.contains("event=")
        );
    }

    #[test]
    fn scrape_urls_follow_bep_48() {
        assert_eq!(
            scrape_url("http://t:80/announce").as_deref(),
            Some("http://t:80/scrape")
        );
        assert_eq!(
            scrape_url("http://t/x/announce.php?k=1").as_deref(),
            Some("http://t/x/scrape.php?k=1")
        );
        assert_eq!(scrape_url("http://t/announce/x"), None);
        assert_eq!(scrape_url("http://t/a"), None);
        let h = [InfoHash([0xaa; 20]), InfoHash([0xbb; 20])];
        assert_eq!(
            scrape_url_for("http://t/scrape?k=1", &h)
                .matches("&info_hash=%AA")
                .count(),
            1
        );
    }

    #[test]
    fn compact_and_dictionary_peers() {
        let body = b"d8:completei5e10:incompletei3e8:intervali1800e12:min intervali60e5:peers12:\x7f\x00\x00\x02\x1a\xe1\x7f\x00\x00\x03\x1a\xe26:peers618:\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe3e";
        let r = parse_announce(body).unwrap();
        assert_eq!(
            (r.seeders, r.leechers, r.interval, r.min_interval),
            (Some(5), Some(3), Some(1800), Some(60))
        );
        let want: Vec<SocketAddr> = vec![
            "127.0.0.2:6881".parse().unwrap(),
            "127.0.0.3:6882".parse().unwrap(),
            "[::1]:6883".parse().unwrap(),
        ];
        assert_eq!(r.peers, want);
        assert_eq!(r.external_ip, None);
        let ext =
            parse_announce(b"d8:intervali60e5:peers0:11:external ip4:\x51\x02\x45\xa0e").unwrap();
        assert_eq!(ext.external_ip, Some("81.2.69.160".parse().unwrap()));
        let dicts = b"d8:intervali60e5:peersld2:ip9:127.0.0.47:peer id20:xxxxxxxxxxxxxxxxxxxx4:porti7000eed2:ip3:bad4:porti1eeee";
        assert_eq!(
            parse_announce(dicts).unwrap().peers,
            vec!["127.0.0.4:7000".parse::<SocketAddr>().unwrap()]
        );
    }

    #[test]
    fn hostile_responses_are_classified() {
        let failure = parse_announce(b"d14:failure reason12:not allowed!e").unwrap_err();
        assert_eq!(failure, TrackerError::Failure("not allowed!".into()));
        assert!(matches!(
            parse_announce(b"<html>"),
            Err(TrackerError::Malformed(_))
        ));
        assert!(matches!(
            parse_announce(b"li1ee"),
            Err(TrackerError::Malformed(_))
        ));
        assert!(matches!(
            parse_announce(b"d8:intervali5ee"),
            Err(TrackerError::Malformed(_))
        ));
        // A compact list whose length is not a multiple of 6: the whole peers are kept.
        let odd = parse_announce(b"d5:peers8:\x7f\x00\x00\x02\x1a\xe1\x01\x02e").unwrap();
        assert_eq!(odd.peers.len(), 1);
        let deep = format!("d5:peers{}{}e", "l".repeat(50), "e".repeat(50));
        assert!(matches!(
            parse_announce(deep.as_bytes()),
            Err(TrackerError::Malformed(_))
        ));
    }

    #[test]
    fn a_reply_beyond_the_cap_is_truncated_and_counted() {
        let n = MAX_PEERS + 345;
        let mut compact = Vec::new();
        for i in 0..n as u32 {
            compact.extend_from_slice(&(0x0a00_0000 + i).to_be_bytes());
            compact.extend_from_slice(&6881u16.to_be_bytes());
        }
        let mut body = format!("d8:intervali60e5:peers{}:", compact.len()).into_bytes();
        body.extend_from_slice(&compact);
        body.push(b'e');
        let r = parse_announce(&body).unwrap();
        assert_eq!((r.peers.len(), r.dropped_peers), (MAX_PEERS, 345));
        let small = parse_announce(b"d8:intervali60e5:peers6:\x7f\x00\x00\x02\x1a\xe1e").unwrap();
        assert_eq!(small.dropped_peers, 0);
    }

    #[test]
    fn scrape_flags_give_the_trackers_interval() {
        let h = InfoHash([0xfe; 20]);
        let with = |flags: &str| {
            let mut body = b"d5:filesd20:".to_vec();
            body.extend_from_slice(&h.0);
            body.extend_from_slice(b"d8:completei1eee5:flags");
            body.extend_from_slice(flags.as_bytes());
            body.push(b'e');
            parse_scrape(&body, &[h]).unwrap()
        };
        let r = with("d20:min_request_intervali900ee");
        assert_eq!((r.min_request_interval, r.counts.len()), (Some(900), 1));
        assert_eq!(
            with("d20:min_request_intervali-5ee").min_request_interval,
            None
        );
        assert_eq!(
            with("d20:min_request_interval3:abce").min_request_interval,
            None
        );
        assert_eq!(with("le").min_request_interval, None, "flags not a dict");
    }

    #[test]
    fn scrape_counts_by_raw_hash() {
        let h = InfoHash([0xfe; 20]);
        let mut body = b"d5:filesd20:".to_vec();
        body.extend_from_slice(&h.0);
        body.extend_from_slice(b"d8:completei2e10:downloadedi9e10:incompletei4eeee");
        let got = parse_scrape(&body, &[h, InfoHash([b'b'; 20])]).unwrap();
        assert_eq!(got.min_request_interval, None);
        assert_eq!(
            got.counts,
            vec![(
                h,
                ScrapeCounts {
                    seeders: Some(2),
                    leechers: Some(4),
                    completed: Some(9)
                }
            )]
        );
    }
}
