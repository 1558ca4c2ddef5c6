//! `.torrent` files (BEP 3 metainfo, BEP 12 announce-list, BEP 52 detection).
//!
//! Parsing is pure: bytes in, [`Metainfo`] or a [`MetainfoError`] naming the reason out.
//! The info-hash is the SHA-1 of the `info` dictionary's bytes *as they appear in the
//! file*, never of a re-encoding, so torrents with unsorted or extra keys hash the way
//! every client hashes them.

use super::bencode::{self, BencodeError, Dict, as_bytes, list_items};
use super::info_hash::InfoHash;

/// What btda needs to know about a torrent's content to count its peers' progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metainfo {
    /// SHA-1 of the raw `info` dictionary (the v1 info-hash, also for hybrid torrents).
    pub info_hash: InfoHash,
    /// `name.utf-8` or `name`, decoded lossily; the info-hash when the torrent has none.
    pub name: String,
    /// Number of pieces: `pieces` length / 20. A peer's bitfield has this many bits.
    pub pieces_count: u32,
    /// Bytes per piece (`piece length`).
    pub piece_size: u64,
    /// Sum of the file lengths, padding files of hybrid torrents excluded.
    pub total_size: u64,
    /// Number of files (padding files excluded).
    pub files: usize,
    /// `private` flag (BEP 27): such torrents must not use DHT or PEX.
    pub private: bool,
    /// `meta version` 2 together with v1 `pieces`: a BEP 52 hybrid torrent.
    pub hybrid: bool,
    /// Every tracker URL of `announce` and all `announce-list` tiers, in order, once each.
    pub trackers: Vec<String>,
}

/// Why a metainfo file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetainfoError {
    /// Syntax or type problem in the bencode.
    #[error(transparent)]
    Bencode(#[from] BencodeError),
    /// A BEP 52 torrent without v1 piece hashes: peers could not be matched to a v1 swarm.
    #[error("BEP 52 v2-only torrent (no v1 `pieces`); btda analyses v1 and hybrid torrents only")]
    V2Only,
    /// Values that are well-typed but impossible.
    #[error("{0}")]
    Invalid(String),
}

/// Parses a whole `.torrent` file.
pub fn parse(bytes: &[u8]) -> Result<Metainfo, MetainfoError> {
    let root_value = bencode::decode(bytes, bencode::MAX_DEPTH)?;
    let root = Dict::new(&root_value, "")?;
    let info_value = root.require("info")?;
    let info = Dict::new(info_value, "info")?;
    let info_hash = InfoHash::of_info_bytes(info_value.buffer());

    let v2 = info.int("meta version")? == Some(2);
    let Some(pieces) = info.bytes("pieces")? else {
        return Err(if v2 {
            MetainfoError::V2Only
        } else {
            BencodeError::Missing("info.pieces".into()).into()
        });
    };
    if pieces.is_empty() || pieces.len() % 20 != 0 {
        return Err(MetainfoError::Invalid(format!(
            "info.pieces is {} bytes, not a positive multiple of 20",
            pieces.len()
        )));
    }
    let pieces_count = u32::try_from(pieces.len() / 20)
        .map_err(|_| MetainfoError::Invalid("more than 2^32 pieces".into()))?;

    let piece_size = match info.int("piece length")? {
        Some(n) if n > 0 => n as u64,
        Some(n) => {
            return Err(MetainfoError::Invalid(format!(
                "info.piece length is {n}, must be positive"
            )));
        }
        None => return Err(BencodeError::Missing("info.piece length".into()).into()),
    };

    let layout = file_layout(&info)?;
    let expected = layout.piece_bytes.div_ceil(piece_size);
    if expected != u64::from(pieces_count) {
        return Err(MetainfoError::Invalid(format!(
            "{pieces_count} piece hashes, but {} bytes in pieces of {piece_size} need {expected}",
            layout.piece_bytes
        )));
    }

    let name = text_field(&info, "name.utf-8")?
        .or(text_field(&info, "name")?)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| info_hash.to_hex());

    Ok(Metainfo {
        info_hash,
        name,
        pieces_count,
        piece_size,
        total_size: layout.content_bytes,
        files: layout.files,
        private: info.int("private")? == Some(1),
        hybrid: v2,
        trackers: trackers(&root)?,
    })
}

/// Sizes derived from `length` or `files`.
struct FileLayout {
    /// All bytes the v1 pieces cover (padding files included).
    piece_bytes: u64,
    /// Bytes of real content (padding files excluded).
    content_bytes: u64,
    /// Number of real files.
    files: usize,
}

fn file_layout(info: &Dict<'_, '_>) -> Result<FileLayout, MetainfoError> {
    if let Some(length) = info.int("length")? {
        let length = non_negative(length, "info.length")?;
        return Ok(FileLayout {
            piece_bytes: length,
            content_bytes: length,
            files: 1,
        });
    }
    let Some(files) = info.list("files")? else {
        return Err(MetainfoError::Invalid(
            "info has neither `length` (single file) nor `files` (multi-file)".into(),
        ));
    };
    if files.is_empty() {
        return Err(MetainfoError::Invalid("info.files is empty".into()));
    }
    let mut layout = FileLayout {
        piece_bytes: 0,
        content_bytes: 0,
        files: 0,
    };
    for (i, file) in files.into_iter().enumerate() {
        let file = Dict::new(file, &format!("info.files[{i}]"))?;
        let length = file
            .int("length")?
            .ok_or_else(|| BencodeError::Missing(file.field("length")))?;
        let length = non_negative(length, &file.field("length"))?;
        if file.list("path")?.is_none_or(|p| p.is_empty()) && file.list("path.utf-8")?.is_none() {
            return Err(MetainfoError::Invalid(format!(
                "{} is missing or empty",
                file.field("path")
            )));
        }
        let padding = file.bytes("attr")?.is_some_and(|a| a.contains(&b'p'));
        layout.piece_bytes = layout
            .piece_bytes
            .checked_add(length)
            .ok_or_else(|| MetainfoError::Invalid("total size overflows".into()))?;
        if !padding {
            layout.content_bytes += length;
            layout.files += 1;
        }
    }
    Ok(layout)
}

fn non_negative(n: i64, field: &str) -> Result<u64, MetainfoError> {
    u64::try_from(n).map_err(|_| MetainfoError::Invalid(format!("{field} is negative ({n})")))
}

fn text_field(dict: &Dict<'_, '_>, key: &str) -> Result<Option<String>, BencodeError> {
    Ok(dict
        .bytes(key)?
        .map(|b| String::from_utf8_lossy(b).trim().to_string()))
}

/// `announce` followed by every URL of every `announce-list` tier, de-duplicated with the
/// first occurrence kept. (The 2015 tool used only the first URL of each tier.)
fn trackers(root: &Dict<'_, '_>) -> Result<Vec<String>, BencodeError> {
    let mut urls = Vec::new();
    if let Some(url) = text_field(root, "announce")? {
        urls.push(url);
    }
    if let Some(tiers) = root.list("announce-list")? {
        for (t, tier) in tiers.into_iter().enumerate() {
            let field = format!("announce-list[{t}]");
            let entries = list_items(tier).ok_or(BencodeError::WrongType {
                field: field.clone(),
                expected: "a list of URLs",
            })?;
            for (u, entry) in entries.into_iter().enumerate() {
                let url = as_bytes(entry).ok_or(BencodeError::WrongType {
                    field: format!("{field}[{u}]"),
                    expected: "a byte string",
                })?;
                urls.push(String::from_utf8_lossy(url).trim().to_string());
            }
        }
    }
    Ok(dedup_urls(urls))
}

/// Removes empty entries and repeats, keeping the first occurrence's position.
pub(crate) fn dedup_urls(urls: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    urls.into_iter()
        .filter(|u| !u.is_empty() && seen.insert(u.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(extra_info: &str, extra_root: &str) -> Vec<u8> {
        let pieces = "x".repeat(40);
        format!(
            "d{extra_root}4:infod6:lengthi40000e4:name4:test12:piece lengthi32768e6:pieces40:{pieces}{extra_info}ee"
        )
        .into_bytes()
    }

    #[test]
    fn single_file_fields() {
        let m = parse(&single("", "8:announce13:http://a/anno")).unwrap();
        assert_eq!(m.pieces_count, 2);
        assert_eq!(m.piece_size, 32768);
        assert_eq!(m.total_size, 40000);
        assert_eq!(m.name, "test");
        assert_eq!(m.trackers, vec!["http://a/anno"]);
        assert!(!m.private && !m.hybrid);
    }

    #[test]
    fn hash_is_over_the_raw_info_bytes() {
        let bytes = single("", "");
        let start = bytes.windows(5).position(|w| w == b"infod").unwrap() + 4;
        let info = &bytes[start..bytes.len() - 1];
        assert_eq!(
            parse(&bytes).unwrap().info_hash,
            InfoHash::of_info_bytes(info)
        );
    }

    #[test]
    fn every_tier_url_once_in_order() {
        let root = "8:announce5:u://a13:announce-listll5:u://a5:u://bel5:u://c5:u://aee";
        let m = parse(&single("", root)).unwrap();
        assert_eq!(m.trackers, vec!["u://a", "u://b", "u://c"]);
    }

    #[test]
    fn bad_announce_list_is_named() {
        let err = parse(&single("", "13:announce-listli5ee")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `announce-list[0]` should be a list of URLs"
        );
    }

    #[test]
    fn piece_count_must_match_size() {
        let pieces = "x".repeat(60);
        let bytes =
            format!("d4:infod6:lengthi40000e4:name1:n12:piece lengthi32768e6:pieces60:{pieces}ee");
        let err = parse(bytes.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("3 piece hashes"), "{err}");
    }

    #[test]
    fn v2_only_and_hybrid() {
        let v2 = b"d4:infod9:file treede12:meta versioni2e4:name1:n12:piece lengthi16384eee";
        assert_eq!(parse(v2).unwrap_err(), MetainfoError::V2Only);
        let hybrid = parse(&single("12:meta versioni2e", "")).unwrap();
        assert!(hybrid.hybrid);
    }

    #[test]
    fn multi_file_skips_padding_in_content_size() {
        let pieces = "x".repeat(40);
        let bytes = format!(
            "d4:infod5:filesld6:lengthi30000e4:pathl1:aeed4:attr1:p6:lengthi2768e4:pathl4:.padeed6:lengthi100e4:pathl1:beee4:name1:d12:piece lengthi32768e6:pieces40:{pieces}ee"
        );
        let m = parse(bytes.as_bytes()).unwrap();
        assert_eq!(m.total_size, 30100);
        assert_eq!(m.files, 2);
    }
}
