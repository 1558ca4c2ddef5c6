//! BEP 33's scrape filters: a 2,048-bit Bloom filter (k = 2) of peer IP addresses that
//! DHT nodes return for an info-hash (`BFsd` for seeds, `BFpe` for peers). Filters from
//! several nodes are merged by OR, and the number of distinct addresses is estimated
//! from the zero bits: `ln(c / m) / (k · ln(1 − 1/m))`, c = min(m − 1, zeros). The
//! estimate breaks down near 8,000 addresses (the filter fills up).

use std::net::IpAddr;

/// Bytes in a filter.
pub const FILTER_BYTES: usize = 256;
const M: f64 = (FILTER_BYTES * 8) as f64;
const K: f64 = 2.0;

/// One scrape filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeFilter(pub [u8; FILTER_BYTES]);

impl Default for ScrapeFilter {
    fn default() -> Self {
        Self([0; FILTER_BYTES])
    }
}

impl ScrapeFilter {
    /// A filter from a reply's field: exactly 256 bytes, else `None`.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        <[u8; FILTER_BYTES]>::try_from(b).ok().map(Self)
    }

    /// Adds an address (its bytes: 4 for IPv4, 16 for IPv6).
    pub fn insert(&mut self, ip: IpAddr) {
        let digest = match ip {
            IpAddr::V4(v4) => sha1_smol::Sha1::from(v4.octets()).digest().bytes(),
            IpAddr::V6(v6) => sha1_smol::Sha1::from(v6.octets()).digest().bytes(),
        };
        for pair in [[digest[0], digest[1]], [digest[2], digest[3]]] {
            let index = usize::from(u16::from_le_bytes(pair)) % (FILTER_BYTES * 8);
            self.0[index / 8] |= 1 << (index % 8);
        }
    }

    /// Adds every address of `other` (the union of the two sets).
    pub fn merge(&mut self, other: &Self) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= b;
        }
    }

    /// The estimated number of distinct addresses in the filter.
    pub fn estimate(&self) -> f64 {
        let zeros: u32 = self.0.iter().map(|b| b.count_zeros()).sum();
        let c = f64::from(zeros).min(M - 1.0);
        (c / M).ln() / (K * (1.0 - 1.0 / M).ln())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// BEP 33's test vector: 192.0.2.0–255 and 2001:DB8::–2001:DB8::3E7.
    const VECTOR: &str = "F6C3F5EAA07FFD91BDE89F777F26FB2BFF37BDB8FB2BBAA2FD3DDDE7BACFFF75EE7CCBAE\
        FE5EEDB1FBFAFF67F6ABFF5E43DDBCA3FD9B9FFDF4FFD3E9DFF12D1BDF59DB53DBE9FA5B\
        7FF3B8FDFCDE1AFB8BEDD7BE2F3EE71EBBBFE93BCDEEFE148246C2BC5DBFF7E7EFDCF24F\
        D8DC7ADFFD8FFFDFDDFFF7A4BBEEDF5CB95CE81FC7FCFF1FF4FFFFDFE5F7FDCBB7FD79B3\
        FA1FC77BFE07FFF905B7B7FFC7FEFEFFE0B8370BB0CD3F5B7F2BD93FEB4386CFDD6F7FD5\
        BFAF2E9EBFFFFEECD67ADBF7C67F17EFD5D75EBA6FFEBA7FFF47A91EB1BFBB53E8ABFB57\
        62ABE8FF237279BFEFBFEEF5FFC5FEBFDFE5ADFFADFEE1FB737FFFFBFD9F6AEFFEEE76B6\
        FD8F72EF";

    #[test]
    fn the_bep_33_test_vector_and_its_estimate() {
        let mut f = ScrapeFilter::default();
        for i in 0..=255u8 {
            f.insert(IpAddr::V4(Ipv4Addr::new(192, 0, 2, i)));
        }
        for i in 0..=0x3e7u16 {
            f.insert(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i)));
        }
        let hex: String = f.0.iter().map(|b| format!("{b:02X}")).collect();
        let expected: String = VECTOR.split_whitespace().collect();
        assert_eq!(hex, expected);
        assert!((f.estimate() - 1224.9308).abs() < 1e-3, "{}", f.estimate());
    }

    #[test]
    fn merging_counts_the_union_and_bad_lengths_are_refused() {
        let (mut a, mut b) = (ScrapeFilter::default(), ScrapeFilter::default());
        assert!(
            a.estimate() < 1.0,
            "empty: the formula gives 0.5 (c = m - 1)"
        );
        for i in 0..100u8 {
            a.insert(IpAddr::V4(Ipv4Addr::new(198, 51, 100, i)));
            b.insert(IpAddr::V4(Ipv4Addr::new(198, 51, 100, i + 50)));
        }
        a.merge(&b);
        let union = a.estimate();
        assert!((140.0..160.0).contains(&union), "150 distinct: {union}");
        assert!(ScrapeFilter::from_bytes(&[0; 255]).is_none());
        assert!(ScrapeFilter::from_bytes(&[0; 256]).is_some());
    }
}
