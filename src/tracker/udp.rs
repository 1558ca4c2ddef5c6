//! UDP tracker protocol (BEP 15), sans-IO: connect, announce and scrape requests, and
//! their responses (including `action = 3` errors), checked against the transaction id.

use super::{AnnounceParams, AnnounceReply, ScrapeCounts, TrackerError};
use crate::torrent::InfoHash;
use crate::wire::compact::{decode_v4 as compact_v4, decode_v6 as compact_v6};

/// The protocol id of a connect request.
pub(super) const PROTOCOL_ID: u64 = 0x0417_2710_1980;
/// Most info-hashes in one scrape packet (BEP 15: about 74 fit).
pub(super) const MAX_SCRAPE: usize = 74;
/// Peers kept from one response.
const MAX_PEERS: usize = 2000;

const CONNECT: u32 = 0;
const ANNOUNCE: u32 = 1;
const SCRAPE: u32 = 2;
const ERROR: u32 = 3;

/// A connect request.
pub(super) fn connect_request(txid: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&PROTOCOL_ID.to_be_bytes());
    b[8..12].copy_from_slice(&CONNECT.to_be_bytes());
    b[12..16].copy_from_slice(&txid.to_be_bytes());
    b
}

/// An announce request (98 bytes).
pub(super) fn announce_request(connection_id: u64, txid: u32, p: &AnnounceParams) -> Vec<u8> {
    let mut b = Vec::with_capacity(98);
    b.extend_from_slice(&connection_id.to_be_bytes());
    b.extend_from_slice(&ANNOUNCE.to_be_bytes());
    b.extend_from_slice(&txid.to_be_bytes());
    b.extend_from_slice(&p.info_hash.0);
    b.extend_from_slice(&p.peer_id);
    b.extend_from_slice(&p.downloaded.to_be_bytes());
    b.extend_from_slice(&p.left.to_be_bytes());
    b.extend_from_slice(&p.uploaded.to_be_bytes());
    b.extend_from_slice(&p.event.udp_code().to_be_bytes());
    b.extend_from_slice(&0u32.to_be_bytes()); // IP: the sender's
    b.extend_from_slice(&p.key.to_be_bytes());
    b.extend_from_slice(&i32::try_from(p.numwant).unwrap_or(i32::MAX).to_be_bytes());
    b.extend_from_slice(&p.port.to_be_bytes());
    b
}

/// A scrape request for at most [`MAX_SCRAPE`] hashes.
pub(super) fn scrape_request(connection_id: u64, txid: u32, hashes: &[InfoHash]) -> Vec<u8> {
    let mut b = Vec::with_capacity(16 + 20 * hashes.len().min(MAX_SCRAPE));
    b.extend_from_slice(&connection_id.to_be_bytes());
    b.extend_from_slice(&SCRAPE.to_be_bytes());
    b.extend_from_slice(&txid.to_be_bytes());
    for h in hashes.iter().take(MAX_SCRAPE) {
        b.extend_from_slice(&h.0);
    }
    b
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Checks the header of a response: length, transaction id, and `action = 3` errors.
/// `Ok(None)` means "not ours" (another transaction id): keep waiting.
fn header(
    packet: &[u8],
    txid: u32,
    action: u32,
    min_len: usize,
) -> Result<Option<()>, TrackerError> {
    if packet.len() < 8 {
        return Err(TrackerError::Malformed(format!(
            "packet of {} bytes",
            packet.len()
        )));
    }
    if be32(packet, 4) != txid {
        return Ok(None);
    }
    match be32(packet, 0) {
        ERROR => Err(TrackerError::Failure(
            String::from_utf8_lossy(&packet[8..packet.len().min(208)])
                .trim()
                .to_string(),
        )),
        a if a != action => Err(TrackerError::Malformed(format!(
            "action {a}, expected {action}"
        ))),
        _ if packet.len() < min_len => Err(TrackerError::Malformed(format!(
            "packet of {} bytes",
            packet.len()
        ))),
        _ => Ok(Some(())),
    }
}

/// The connection id from a connect response.
pub(super) fn parse_connect(packet: &[u8], txid: u32) -> Result<Option<u64>, TrackerError> {
    Ok(header(packet, txid, CONNECT, 16)?
        .map(|()| u64::from_be_bytes(packet[8..16].try_into().unwrap_or([0; 8]))))
}

/// An announce response; peers are IPv6 when the request went over IPv6 (BEP 15).
pub(super) fn parse_announce(
    packet: &[u8],
    txid: u32,
    ipv6: bool,
) -> Result<Option<AnnounceReply>, TrackerError> {
    if header(packet, txid, ANNOUNCE, 20)?.is_none() {
        return Ok(None);
    }
    let body = &packet[20..];
    let mut peers: Vec<_> = if ipv6 {
        compact_v6(body).collect()
    } else {
        compact_v4(body).collect()
    };
    let dropped_peers = super::cap_peers(&mut peers, MAX_PEERS);
    Ok(Some(AnnounceReply {
        interval: Some(u64::from(be32(packet, 8))),
        min_interval: None,
        leechers: Some(be32(packet, 12)),
        seeders: Some(be32(packet, 16)),
        completed: None,
        peers,
        warning: None,
        external_ip: None,
        dropped_peers,
    }))
}

/// A scrape response, in the order of the request's hashes.
pub(super) fn parse_scrape(
    packet: &[u8],
    txid: u32,
    hashes: &[InfoHash],
) -> Result<Option<Vec<(InfoHash, ScrapeCounts)>>, TrackerError> {
    if header(packet, txid, SCRAPE, 8)?.is_none() {
        return Ok(None);
    }
    Ok(Some(
        packet[8..]
            .chunks_exact(12)
            .zip(hashes)
            .map(|(c, h)| {
                (
                    *h,
                    ScrapeCounts {
                        seeders: Some(be32(c, 0)),
                        completed: Some(be32(c, 4)),
                        leechers: Some(be32(c, 8)),
                    },
                )
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::Event;

    #[test]
    fn requests_have_the_bep_15_layout() {
        let c = connect_request(0x0102_0304);
        assert_eq!(&c[..8], &[0, 0, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80]);
        assert_eq!(&c[8..], &[0, 0, 0, 0, 1, 2, 3, 4]);
        let p = AnnounceParams {
            info_hash: InfoHash([9; 20]),
            peer_id: [8; 20],
            port: 6881,
            uploaded: 1,
            downloaded: 2,
            left: 3,
            numwant: 200,
            key: 7,
            event: Event::Started,
        };
        let a = announce_request(42, 5, &p);
        assert_eq!(a.len(), 98);
        assert_eq!(&a[..8], &42u64.to_be_bytes());
        assert_eq!(be32(&a, 8), 1);
        assert_eq!(be32(&a, 80), 2, "event started = 2");
        assert_eq!(&a[96..], &6881u16.to_be_bytes());
        let hashes: Vec<InfoHash> = (0..100u8).map(|i| InfoHash([i; 20])).collect();
        assert_eq!(scrape_request(1, 2, &hashes).len(), 16 + 20 * MAX_SCRAPE);
    }

    #[test]
    fn responses_check_transaction_and_action() {
        let mut conn = vec![0, 0, 0, 0, 0, 0, 0, 7];
        conn.extend_from_slice(&99u64.to_be_bytes());
        assert_eq!(parse_connect(&conn, 7), Ok(Some(99)));
        assert_eq!(parse_connect(&conn, 8), Ok(None), "other transaction");
        assert!(matches!(
            parse_connect(&conn[..12], 7),
            Err(TrackerError::Malformed(_))
        ));
        let mut err = vec![0, 0, 0, 3, 0, 0, 0, 7];
        err.extend_from_slice(b"torrent not registered");
        assert_eq!(
            parse_connect(&err, 7),
            Err(TrackerError::Failure("torrent not registered".into()))
        );
        assert!(matches!(
            parse_connect(&[1, 2, 3], 7),
            Err(TrackerError::Malformed(_))
        ));
    }

    #[test]
    fn announce_and_scrape_responses() {
        let mut a = vec![0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 7, 8, 0, 0, 0, 3, 0, 0, 0, 9];
        a.extend_from_slice(&[127, 0, 0, 2, 0x1a, 0xe1, 127, 0, 0, 3]); // 1.66 peers
        let r = parse_announce(&a, 5, false).unwrap().unwrap();
        assert_eq!(
            (r.interval, r.leechers, r.seeders),
            (Some(1800), Some(3), Some(9))
        );
        assert_eq!(r.peers, vec!["127.0.0.2:6881".parse().unwrap()]);
        let mut s = vec![0, 0, 0, 2, 0, 0, 0, 6];
        s.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]);
        let h = [InfoHash([1; 20]), InfoHash([2; 20])];
        let got = parse_scrape(&s, 6, &h).unwrap().unwrap();
        assert_eq!(
            got,
            vec![(
                h[0],
                ScrapeCounts {
                    seeders: Some(1),
                    completed: Some(2),
                    leechers: Some(3)
                }
            )]
        );
    }
}
