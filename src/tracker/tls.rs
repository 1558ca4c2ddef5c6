//! Trusted roots for `https://` trackers beyond the built-in webpki ones
//! (`tracker.ca_file`: a private tracker with its own CA, and the tests), and telling
//! a failed TLS handshake from other I/O errors.

use std::path::Path;

/// Largest PEM file read (a CA bundle is a few hundred KiB).
#[cfg(feature = "https")]
const MAX_BYTES: u64 = 4 << 20;
/// Most certificates taken from it.
#[cfg(feature = "https")]
const MAX_CERTS: usize = 1_000;

/// The certificates of a PEM file, DER-encoded (other sections, such as keys, are
/// skipped); an error says what is wrong with the file.
#[cfg(feature = "https")]
pub fn load_roots(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if size > MAX_BYTES {
        return Err(format!("{size} bytes; at most {MAX_BYTES} are read"));
    }
    let text = std::fs::read(path).map_err(|e| e.to_string())?;
    let mut certs = Vec::new();
    for (i, cert) in CertificateDer::pem_slice_iter(&text).enumerate() {
        let cert = cert.map_err(|e| format!("certificate {}: {e}", i + 1))?;
        if certs.len() == MAX_CERTS {
            return Err(format!("more than {MAX_CERTS} certificates"));
        }
        certs.push(cert.to_vec());
    }
    if certs.is_empty() {
        return Err("no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into());
    }
    Ok(certs)
}

/// Without the `https` feature no root is of use.
#[cfg(not(feature = "https"))]
pub fn load_roots(_: &Path) -> Result<Vec<Vec<u8>>, String> {
    Err("this build has no HTTPS (cargo feature `https`)".into())
}

/// The TLS error inside an I/O error from the HTTP client, if it is one.
#[cfg(feature = "https")]
pub(crate) fn tls_error(e: &std::io::Error) -> Option<String> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .map(ToString::to_string)
}

/// Without the `https` feature no handshake is ever made.
#[cfg(not(feature = "https"))]
pub(crate) fn tls_error(_: &std::io::Error) -> Option<String> {
    None
}

#[cfg(all(test, feature = "https"))]
mod tests {
    use super::*;

    #[test]
    fn certificates_are_read_and_bad_files_named() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let ca = load_roots(&fixtures.join("tls-ca.pem")).unwrap();
        assert_eq!(ca.len(), 1);
        assert_eq!(ca[0][0], 0x30, "DER: a SEQUENCE");
        let key_only = load_roots(&fixtures.join("tls-tracker.key")).unwrap_err();
        assert!(key_only.contains("no PEM certificate"), "{key_only}");
        let dir = tempfile::tempdir().unwrap();
        let broken = dir.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\nAQ!D\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(load_roots(&broken).unwrap_err().contains("certificate 1"));
        assert!(load_roots(&dir.path().join("missing.pem")).is_err());
    }
}
