//! Bounded bencode decoding on top of `torrust-bencode`.
//!
//! Every byte string that reaches btda from outside (a `.torrent` file today, tracker
//! and DHT payloads later) is decoded here, with an explicit nesting limit so that a
//! crafted `llll…` cannot exhaust a thread's stack, and with helpers that name the
//! offending field when a value has the wrong type.

use torrust_bencode::{BDecodeOpt, BRefAccess, BencodeRef};

pub use torrust_bencode::BencodeRef as Value;

/// Nesting depth accepted in metainfo files. Real torrents nest at most about five deep
/// (root → info → files → file → path → component); 32 leaves room for odd extensions.
pub(crate) const MAX_DEPTH: usize = 32;

/// What went wrong while reading bencoded input, with the field it concerns.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BencodeError {
    /// The bytes are not valid bencode (truncated, bad syntax, too deep, trailing bytes).
    #[error("not valid bencode: {0}")]
    Syntax(String),
    /// A required key is absent.
    #[error("missing field `{0}`")]
    Missing(String),
    /// A key is present but holds the wrong kind of value.
    #[error("field `{field}` should be {expected}")]
    WrongType {
        /// Dotted path of the field, e.g. `info.piece length`.
        field: String,
        /// What the field should have been (`an integer`, `a dictionary`, …).
        expected: &'static str,
    },
}

/// Decodes a whole buffer: exactly one value, nothing after it, at most `max_depth` deep.
pub fn decode(bytes: &[u8], max_depth: usize) -> Result<BencodeRef<'_>, BencodeError> {
    // Duplicate keys are an error in the crate; key order is not checked, so that
    // non-canonical torrents (which real clients accept) still load.
    let opts = BDecodeOpt::new(max_depth, false, true);
    BencodeRef::decode(bytes, opts).map_err(|e| BencodeError::Syntax(describe(&e, bytes.len())))
}

/// Turns the crate's error into a sentence a user can act on.
fn describe(err: &torrust_bencode::BencodeParseError, len: usize) -> String {
    use torrust_bencode::BencodeParseError as E;
    match err {
        E::BytesEmpty { pos } if *pos >= len => format!("truncated (input ends at byte {len})"),
        E::BytesEmpty { pos } => {
            format!("unexpected data after the end of the value at byte {pos}")
        }
        E::InvalidRecursionExceeded { pos, .. } => {
            format!("nested deeper than the limit at byte {pos}")
        }
        E::InvalidLengthOverflow { pos } => {
            format!("string at byte {pos} claims more bytes than remain (truncated)")
        }
        other => other.to_string().to_lowercase(),
    }
}

/// Read-only view of a bencoded dictionary that reports type errors by field path.
pub(crate) struct Dict<'a, 'b> {
    value: &'b BencodeRef<'a>,
    path: String,
}

impl<'a, 'b> Dict<'a, 'b> {
    /// Views `value` as a dictionary; `path` names it in errors (empty for the root).
    pub(crate) fn new(value: &'b BencodeRef<'a>, path: &str) -> Result<Self, BencodeError> {
        if value.dict().is_none() {
            return Err(BencodeError::WrongType {
                field: if path.is_empty() {
                    "(root)".into()
                } else {
                    path.into()
                },
                expected: "a dictionary",
            });
        }
        Ok(Self {
            value,
            path: path.to_string(),
        })
    }

    /// Dotted path of `key` inside this dictionary, for error messages.
    pub(crate) fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The raw value under `key`, if present.
    pub(crate) fn get(&self, key: &str) -> Option<&'b BencodeRef<'a>> {
        self.value.dict().and_then(|d| d.lookup(key.as_bytes()))
    }

    /// The raw value under a byte-string key (e.g. a 20-byte info-hash in a scrape).
    pub(crate) fn get_raw(&self, key: &[u8]) -> Option<&'b BencodeRef<'a>> {
        self.value.dict().and_then(|d| d.lookup(key))
    }

    /// The raw value under `key`, or a `Missing` error.
    pub(crate) fn require(&self, key: &str) -> Result<&'b BencodeRef<'a>, BencodeError> {
        self.get(key)
            .ok_or_else(|| BencodeError::Missing(self.field(key)))
    }

    /// An optional integer field.
    pub(crate) fn int(&self, key: &str) -> Result<Option<i64>, BencodeError> {
        self.get(key)
            .map(|v| v.int().ok_or_else(|| self.wrong(key, "an integer")))
            .transpose()
    }

    /// An optional byte-string field.
    pub(crate) fn bytes(&self, key: &str) -> Result<Option<&'a [u8]>, BencodeError> {
        self.get(key)
            .map(|v| as_bytes(v).ok_or_else(|| self.wrong(key, "a byte string")))
            .transpose()
    }

    /// An optional list field.
    pub(crate) fn list(&self, key: &str) -> Result<Option<Vec<&'b BencodeRef<'a>>>, BencodeError> {
        self.get(key)
            .map(|v| list_items(v).ok_or_else(|| self.wrong(key, "a list")))
            .transpose()
    }

    /// An optional nested dictionary.
    pub(crate) fn dict(&self, key: &str) -> Result<Option<Dict<'a, 'b>>, BencodeError> {
        self.get(key)
            .map(|v| Dict::new(v, &self.field(key)))
            .transpose()
    }

    /// A `WrongType` error for `key`.
    pub(crate) fn wrong(&self, key: &str, expected: &'static str) -> BencodeError {
        BencodeError::WrongType {
            field: self.field(key),
            expected,
        }
    }
}

/// The bytes of a byte-string value (None for other kinds).
pub fn as_bytes<'a>(value: &BencodeRef<'a>) -> Option<&'a [u8]> {
    use torrust_bencode::ext::BRefAccessExt;
    value.bytes_ext()
}

/// The items of a list value (None for other kinds).
pub(crate) fn list_items<'a, 'b>(value: &'b BencodeRef<'a>) -> Option<Vec<&'b BencodeRef<'a>>> {
    let list = value.list()?;
    Some((0..list.len()).filter_map(|i| list.get(i)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_nested_values() {
        let v = decode(b"d3:agei7e4:listl1:ae3:subdee", MAX_DEPTH).unwrap();
        let d = Dict::new(&v, "").unwrap();
        assert_eq!(d.int("age").unwrap(), Some(7));
        assert_eq!(d.list("list").unwrap().unwrap().len(), 1);
        assert!(d.dict("sub").unwrap().is_some());
        assert_eq!(d.bytes("nothing").unwrap(), None);
    }

    #[test]
    fn names_wrong_types_by_path() {
        let v = decode(b"d4:infod6:lengthi1eee", MAX_DEPTH).unwrap();
        let d = Dict::new(&v, "").unwrap();
        let info = d.dict("info").unwrap().unwrap();
        assert_eq!(
            info.bytes("length").unwrap_err().to_string(),
            "field `info.length` should be a byte string"
        );
        assert_eq!(
            info.require("name").unwrap_err().to_string(),
            "missing field `info.name`"
        );
    }

    #[test]
    fn rejects_depth_bombs_without_overflowing_the_stack() {
        let mut bomb = vec![b'l'; 100_000];
        bomb.extend(std::iter::repeat_n(b'e', 100_000));
        let err = decode(&bomb, MAX_DEPTH).unwrap_err();
        assert!(err.to_string().contains("deeper than the limit"), "{err}");
    }

    #[test]
    fn rejects_truncation_and_trailing_garbage() {
        let err = decode(b"d3:abc", MAX_DEPTH).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
        let err = decode(b"d3:fooi1eeXYZ", MAX_DEPTH).unwrap_err().to_string();
        assert!(err.contains("after the end"), "{err}");
        let err = decode(b"5:ab", MAX_DEPTH).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn rejects_duplicate_keys() {
        assert!(decode(b"d1:ai1e1:ai2ee", MAX_DEPTH).is_err());
    }
}
