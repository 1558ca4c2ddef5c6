//! Client name and version from a peer id: Azureus style (`-XXvvvv-`), the Shad0w and
//! Mainline styles, and a few client-specific ones (aria2, BitComet's `exbc`).
//!
//! The conventions are those catalogued by BEP 20 and by Transmission's client table;
//! the table below is a selection of the clients seen in public swarms.

/// A decoded client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Client name, `unknown` when the id follows no known convention.
    pub name: String,
    /// Version text, if the id carries one.
    pub version: Option<String>,
}

#[derive(Clone, Copy)]
enum Style {
    /// `-XXabcd-` → a.b.c.d (each character 0-9, A-Z = 10…, a-z = 36…).
    Four,
    /// `-XXabc?-` → a.b.c.
    Three,
    /// `-XXaabb-` → aa.bb (two decimal digits each, minor zero-padded).
    TwoTwo,
    /// `-XXaabb-` → aa.bb without padding (WebTorrent: 0109 is 1.9).
    Pairs,
    /// Transmission's own scheme (see [`transmission`]).
    Transmission,
    /// µTorrent: hex digits, a trailing build letter.
    UTorrent,
    /// `-KTabRc-` (R = release candidate, D = dev).
    KTorrent,
    /// No version in the id.
    None,
}

/// Azureus-style prefixes (`-XX`), sorted by prefix for the binary search.
const AZUREUS: &[(&str, &str, Style)] = &[
    ("AG", "Ares", Style::Four),
    ("AZ", "Vuze", Style::Four),
    ("BB", "BitBuddy", Style::Four),
    ("BC", "BitComet", Style::TwoTwo),
    ("BI", "BiglyBT", Style::Four),
    ("BN", "Baidu Netdisk", Style::None),
    ("BT", "BitTorrent", Style::UTorrent),
    ("CD", "Enhanced CTorrent", Style::TwoTwo),
    ("DE", "Deluge", Style::Four),
    ("FD", "Free Download Manager", Style::Three),
    ("FL", "Folx", Style::Three),
    ("FW", "FrostWire", Style::Three),
    ("FX", "Freebox", Style::Four),
    ("HL", "Halite", Style::Three),
    ("KG", "KGet", Style::Four),
    ("KT", "KTorrent", Style::KTorrent),
    ("LT", "libtorrent (Rasterbar)", Style::Three),
    ("LW", "LimeWire", Style::None),
    ("MG", "MediaGet", Style::Three),
    ("MO", "MonoTorrent", Style::Four),
    ("PI", "PicoTorrent", Style::Three),
    ("QD", "QQDownload", Style::Four),
    ("SD", "Thunder", Style::Four),
    ("SZ", "Shareaza", Style::Four),
    ("TR", "Transmission", Style::Transmission),
    ("UE", "µTorrent Embedded", Style::UTorrent),
    ("UM", "µTorrent Mac", Style::UTorrent),
    ("UT", "µTorrent", Style::UTorrent),
    ("UW", "µTorrent Web", Style::UTorrent),
    ("VG", "Vagaa", Style::Four),
    ("WW", "WebTorrent", Style::Pairs),
    ("XL", "Xunlei", Style::Four),
    ("ZO", "Zona", Style::Four),
    ("bk", "BitKitten", Style::Four),
    ("lt", "rTorrent (libTorrent)", Style::Three),
    ("pb", "pbTorrent", Style::Three),
    ("qB", "qBittorrent", Style::Three),
];

fn char_value(c: u8) -> Option<u32> {
    match c {
        b'0'..=b'9' => Some(u32::from(c - b'0')),
        b'A'..=b'Z' => Some(u32::from(c - b'A') + 10),
        b'a'..=b'z' => Some(u32::from(c - b'a') + 36),
        _ => None,
    }
}

fn digits(id: &[u8], range: std::ops::Range<usize>) -> Option<String> {
    let parts: Option<Vec<String>> = id[range]
        .iter()
        .map(|&c| char_value(c).map(|v| v.to_string()))
        .collect();
    parts.map(|p| p.join("."))
}

fn decimal(id: &[u8], range: std::ops::Range<usize>) -> Option<u32> {
    std::str::from_utf8(&id[range]).ok()?.parse().ok()
}

fn suffix(c: u8) -> &'static str {
    match c {
        b'B' | b'b' => " beta",
        b'X' | b'x' | b'Z' => " dev",
        _ => "",
    }
}

/// Transmission: `-TR0006-` 0.6, `-TR0072-` 0.72, `-TR2940-` 2.94, `-TR3000-` 3.00,
/// and from 4.0 three single digits, `-TR4050-` 4.0.5 (`Z`/`X` dev, `B` beta).
fn transmission(id: &[u8]) -> Option<String> {
    if &id[3..6] == b"000" {
        return Some(format!("0.{}", id[6] as char));
    }
    if &id[3..5] == b"00" {
        return Some(format!("0.{:02}", decimal(id, 5..7)?));
    }
    if id[3] <= b'3' {
        let plus = if matches!(id[6], b'Z' | b'X') {
            "+"
        } else {
            ""
        };
        return Some(format!(
            "{}.{:02}{plus}",
            decimal(id, 3..4)?,
            decimal(id, 4..6)?
        ));
    }
    Some(format!(
        "{}.{}.{}{}",
        char_value(id[3])?,
        char_value(id[4])?,
        char_value(id[5])?,
        suffix(id[6])
    ))
}

/// µTorrent: `-UT355W-` 3.5.5, `-UT2210-` 2.2.1; a digit instead of the closing dash
/// extends the last part (`-UT22100` is not produced by current versions).
fn utorrent(id: &[u8]) -> Option<String> {
    let hex = |c: u8| (c as char).to_digit(16);
    Some(format!(
        "{}.{}.{}{}",
        hex(id[3])?,
        hex(id[4])?,
        hex(id[5])?,
        suffix(id[6])
    ))
}

fn azureus(id: &[u8]) -> Option<Client> {
    if id[0] != b'-' || id[7] != b'-' {
        return None;
    }
    let code = std::str::from_utf8(&id[1..3]).ok()?;
    let i = AZUREUS.binary_search_by(|(p, _, _)| (*p).cmp(code)).ok()?;
    let (_, name, style) = AZUREUS[i];
    let version = match style {
        Style::Four => digits(id, 3..7),
        Style::Three => digits(id, 3..6),
        Style::TwoTwo => Some(format!("{}.{:02}", decimal(id, 3..5)?, decimal(id, 5..7)?)),
        Style::Pairs => Some(format!("{}.{}", decimal(id, 3..5)?, decimal(id, 5..7)?)),
        Style::Transmission => transmission(id),
        Style::UTorrent => utorrent(id),
        Style::KTorrent => match id[5] {
            b'R' => Some(format!(
                "{}.{} rc {}",
                char_value(id[3])?,
                char_value(id[4])?,
                char_value(id[6])?
            )),
            b'D' => Some(format!(
                "{}.{} dev {}",
                char_value(id[3])?,
                char_value(id[4])?,
                char_value(id[6])?
            )),
            _ => digits(id, 3..6),
        },
        Style::None => None,
    };
    Some(Client {
        name: name.to_string(),
        version,
    })
}

/// Shad0w style: a letter, up to five version characters, padded with `-` to `---`.
fn shadow(id: &[u8]) -> Option<Client> {
    if &id[6..9] != b"---" {
        return None;
    }
    let name = match id[0] {
        b'A' => "ABC",
        b'O' => "Osprey",
        b'Q' => "BTQueue",
        b'R' => "Tribler",
        b'S' => "Shad0w",
        b'T' => "BitTornado",
        b'U' => "UPnP NAT BitTorrent",
        _ => return None,
    };
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.-";
    let body: Vec<u8> = id[1..6]
        .iter()
        .copied()
        .take_while(|&c| c != b'-')
        .collect();
    let parts: Option<Vec<String>> = body
        .iter()
        .map(|c| ALPHABET.iter().position(|a| a == c).map(|p| p.to_string()))
        .collect();
    Some(Client {
        name: name.into(),
        version: parts.map(|p| p.join(".")).filter(|v| !v.is_empty()),
    })
}

/// Mainline style: `M4-3-6--` is BitTorrent 4.3.6, `M7-10-2-` 7.10.2 (also `Q` for Queen Bee).
fn mainline(id: &[u8]) -> Option<Client> {
    let name = match id[0] {
        b'M' => "BitTorrent",
        b'Q' => "Queen Bee",
        _ => return None,
    };
    let text = std::str::from_utf8(&id[1..8]).ok()?;
    let parts: Vec<&str> = text.trim_end_matches('-').split('-').collect();
    if parts.len() != 3
        || !parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    Some(Client {
        name: name.into(),
        version: Some(parts.join(".")),
    })
}

/// aria2: `A2-1-36-0-…` is aria2 1.36.0.
fn aria2(id: &[u8]) -> Option<Client> {
    if !id.starts_with(b"A2-") {
        return None;
    }
    let text = String::from_utf8_lossy(&id[3..]);
    let parts: Vec<&str> = text.split('-').take(3).collect();
    let ok = parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    Some(Client {
        name: "aria2".into(),
        version: ok.then(|| parts.join(".")),
    })
}

/// BitComet before 0.59 and BitLord: `exbc` + major byte + minor byte.
fn bitcomet_old(id: &[u8]) -> Option<Client> {
    if !id.starts_with(b"exbc") {
        return None;
    }
    let name = if &id[6..10] == b"LORD" {
        "BitLord"
    } else {
        "BitComet"
    };
    Some(Client {
        name: name.into(),
        version: Some(format!("{}.{:02}", id[4], id[5])),
    })
}

/// Decodes a peer id. Never fails: an id of no known style is `unknown` with its
/// printable first eight characters as the version, so odd clients stay visible.
pub(crate) fn identify(peer_id: &[u8; 20]) -> Client {
    azureus(peer_id)
        .or_else(|| aria2(peer_id))
        .or_else(|| bitcomet_old(peer_id))
        .or_else(|| shadow(peer_id))
        .or_else(|| mainline(peer_id))
        .unwrap_or_else(|| Client {
            name: "unknown".into(),
            version: Some(
                peer_id[..8]
                    .iter()
                    .map(|&c| {
                        if c.is_ascii_graphic() {
                            (c as char).to_string()
                        } else {
                            format!("%{c:02X}")
                        }
                    })
                    .collect(),
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(prefix: &[u8]) -> [u8; 20] {
        let mut out = *b"XXXXXXXXXXXXXXXXXXXX";
        out[..prefix.len()].copy_from_slice(prefix);
        out
    }

    fn check(prefix: &[u8], name: &str, version: Option<&str>) {
        let c = identify(&id(prefix));
        assert_eq!(
            (c.name.as_str(), c.version.as_deref()),
            (name, version),
            "{}",
            String::from_utf8_lossy(prefix)
        );
    }

    #[test]
    fn table_is_sorted_for_binary_search() {
        assert!(AZUREUS.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn twenty_and_more_clients() {
        check(b"-TR2940-", "Transmission", Some("2.94"));
        check(b"-TR3000-", "Transmission", Some("3.00"));
        check(b"-TR0072-", "Transmission", Some("0.72"));
        check(b"-TR4050-", "Transmission", Some("4.0.5"));
        check(b"-TR400B-", "Transmission", Some("4.0.0 beta"));
        check(b"-TR300Z-", "Transmission", Some("3.00+"));
        check(b"-qB4630-", "qBittorrent", Some("4.6.3"));
        check(b"-qB5010-", "qBittorrent", Some("5.0.1"));
        check(b"-LT2090-", "libtorrent (Rasterbar)", Some("2.0.9"));
        check(b"-LT1B40-", "libtorrent (Rasterbar)", Some("1.11.4"));
        check(b"-lt0D80-", "rTorrent (libTorrent)", Some("0.13.8"));
        check(b"-UT355W-", "µTorrent", Some("3.5.5"));
        check(b"-UT360B-", "µTorrent", Some("3.6.0 beta"));
        check(b"-UM1870-", "µTorrent Mac", Some("1.8.7"));
        check(b"-BT7A0S-", "BitTorrent", Some("7.10.0"));
        check(b"-BC0208-", "BitComet", Some("2.08"));
        check(b"exbc\x00\x3a", "BitComet", Some("0.58"));
        check(b"-DE13F0-", "Deluge", Some("1.3.15.0"));
        check(b"-DE2110-", "Deluge", Some("2.1.1.0"));
        check(b"A2-1-36-0-", "aria2", Some("1.36.0"));
        check(b"-AZ5770-", "Vuze", Some("5.7.7.0"));
        check(b"-BI3601-", "BiglyBT", Some("3.6.0.1"));
        check(b"-KT4130-", "KTorrent", Some("4.1.3"));
        check(b"-KT22R1-", "KTorrent", Some("2.2 rc 1"));
        check(b"-WW0109-", "WebTorrent", Some("1.9"));
        check(b"-XL0019-", "Xunlei", Some("0.0.1.9"));
        check(b"-SD0100-", "Thunder", Some("0.1.0.0"));
        check(b"-FD51W-", "unknown", Some("-FD51W-X"));
        check(b"-PI0340-", "PicoTorrent", Some("0.3.4"));
        check(b"-BN0001-", "Baidu Netdisk", None);
        check(b"M4-3-6--", "BitTorrent", Some("4.3.6"));
        check(b"M7-10-2-", "BitTorrent", Some("7.10.2"));
        check(b"T03I-----", "BitTornado", Some("0.3.18"));
        check(b"S58B-----", "Shad0w", Some("5.8.11"));
        check(b"-BD0100-", "unknown", Some("-BD0100-"));
        check(b"\x00\x01\x02-", "unknown", Some("%00%01%02-XXXX"));
    }
}
