//! Where a run's files go: `output/<YYYY-mm-dd_HH-MM-SS>_<host>.sqlite` and `.log`.

use std::path::{Path, PathBuf};

/// The database and log of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFiles {
    /// The SQLite database.
    pub database: PathBuf,
    /// The log file.
    pub log: PathBuf,
}

impl RunFiles {
    /// Chooses names in `output` (created if missing) from the start time and host; a
    /// second run in the same second gets a `-2`, `-3`, … suffix instead of overwriting.
    pub(crate) fn choose(output: &Path, started_at: i64, host: &str) -> std::io::Result<Self> {
        std::fs::create_dir_all(output)?;
        let stem = format!(
            "{}_{}",
            crate::clock::file_stamp(started_at),
            file_safe(host)
        );
        for n in 1u32.. {
            let name = if n == 1 {
                stem.clone()
            } else {
                format!("{stem}-{n}")
            };
            let files = Self {
                database: output.join(format!("{name}.sqlite")),
                log: output.join(format!("{name}.log")),
            };
            if !files.database.exists() && !files.log.exists() {
                return Ok(files);
            }
        }
        unreachable!("u32 suffixes exhausted")
    }
}

/// This machine's host name (Linux `/proc`, then `/etc/hostname`, then `HOSTNAME`).
pub(super) fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .chain(std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown-host".to_string())
}

/// Keeps letters, digits, `.`, `-` and `_`; anything else becomes `_`.
fn file_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_pattern_and_never_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let a = RunFiles::choose(dir.path(), 0, "my host/1").unwrap();
        assert_eq!(
            a.database.file_name().unwrap(),
            "1970-01-01_00-00-00_my_host_1.sqlite"
        );
        std::fs::write(&a.database, b"").unwrap();
        let b = RunFiles::choose(dir.path(), 0, "my host/1").unwrap();
        assert_eq!(
            b.log.file_name().unwrap(),
            "1970-01-01_00-00-00_my_host_1-2.log"
        );
    }

    #[test]
    fn hostname_is_never_empty() {
        assert!(!hostname().is_empty());
    }
}
