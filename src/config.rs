//! The TOML configuration (`input/btda.toml`).
//!
//! Every value has a default in code, and the committed `input/btda.toml` lists all of
//! them with unit and reason (a test keeps the two equal). Unknown keys are an error that
//! names the key, so a typo never silently falls back to a default.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The config file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax error, wrong type or unknown key (the message names it).
    #[error("{path}: {message}")]
    Parse {
        /// The config file.
        path: String,
        /// The parser's message, which names the key and line.
        message: String,
    },
    /// A value outside its allowed range.
    #[error("{path}: {key} = {value}: {why}")]
    Invalid {
        /// The config file.
        path: String,
        /// Dotted key.
        key: &'static str,
        /// The value as written.
        value: String,
        /// The allowed range.
        why: &'static str,
    },
}

/// All of btda's settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Counting rules.
    pub analysis: Analysis,
    /// Reading inputs.
    pub import: Import,
    /// The SQLite writer thread.
    pub writer: Writer,
    /// Terminal status line and log.
    pub monitor: Monitor,
}

/// Counting rules (DESIGN.md, "Counting rules").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Analysis {
    /// Share of pieces at which a peer counts as complete; T = ceil(threshold × pieces).
    pub threshold: f64,
}

/// Reading `.torrent` files and magnet links.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Import {
    /// Largest `.torrent` file read, in bytes.
    pub max_torrent_bytes: u64,
}

/// The single SQLite writer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Writer {
    /// Records the channel to the writer holds before senders wait.
    pub channel_capacity: usize,
    /// Records per transaction at most.
    pub batch_records: usize,
    /// Longest time a record waits before its transaction commits, in milliseconds.
    pub batch_interval_ms: u64,
}

/// Terminal output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Monitor {
    /// Seconds between status lines on stderr (0 turns them off).
    pub status_interval_secs: u64,
}

impl Default for Analysis {
    fn default() -> Self {
        Self { threshold: 0.98 }
    }
}

impl Default for Import {
    fn default() -> Self {
        Self {
            max_torrent_bytes: 64 * 1024 * 1024,
        }
    }
}

impl Default for Writer {
    fn default() -> Self {
        Self {
            channel_capacity: 65_536,
            batch_records: 10_000,
            batch_interval_ms: 500,
        }
    }
}

impl Default for Monitor {
    fn default() -> Self {
        Self {
            status_interval_secs: 10,
        }
    }
}

impl Config {
    /// Reads `path`; a missing file gives the built-in defaults. Returns the config and
    /// whether the file existed.
    pub fn load(path: &Path) -> Result<(Self, bool), ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok((Self::parse(&text, &path.display().to_string())?, true)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Self::default(), false)),
            Err(source) => Err(ConfigError::Read {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        config.validate(origin)?;
        Ok(config)
    }

    /// The effective configuration as TOML, stored in the `run` row.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# not serialisable: {e}"))
    }

    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |key, value: String, why| ConfigError::Invalid {
            path: origin.to_string(),
            key,
            value,
            why,
        };
        let t = self.analysis.threshold;
        if !(t > 0.0 && t <= 1.0) {
            return Err(invalid(
                "analysis.threshold",
                t.to_string(),
                "must be in (0, 1]",
            ));
        }
        if self.writer.batch_records == 0 {
            return Err(invalid(
                "writer.batch_records",
                "0".into(),
                "must be at least 1",
            ));
        }
        if self.writer.channel_capacity == 0 {
            return Err(invalid(
                "writer.channel_capacity",
                "0".into(),
                "must be at least 1",
            ));
        }
        if self.writer.batch_interval_ms == 0 {
            return Err(invalid(
                "writer.batch_interval_ms",
                "0".into(),
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_file_documents_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("input/btda.toml");
        let (config, existed) = Config::load(&path).unwrap();
        assert!(existed, "input/btda.toml must be committed");
        assert_eq!(config, Config::default());
        // Every key of the defaults is written out in the committed file.
        let text = std::fs::read_to_string(&path).unwrap();
        let defaults: toml::Table = toml::from_str(&Config::default().to_toml()).unwrap();
        for (section, values) in &defaults {
            assert!(
                text.contains(&format!("[{section}]")),
                "missing [{section}]"
            );
            for key in values.as_table().unwrap().keys() {
                assert!(
                    text.contains(&format!("\n{key} =")),
                    "missing {section}.{key}"
                );
            }
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::parse("[writer]\nbatch_recrods = 5\n", "x.toml").unwrap_err();
        assert!(err.to_string().contains("batch_recrods"), "{err}");
        let err = Config::parse("[nonsense]\n", "x.toml").unwrap_err();
        assert!(err.to_string().contains("nonsense"), "{err}");
    }

    #[test]
    fn partial_files_keep_other_defaults_and_ranges_are_checked() {
        let c = Config::parse("[analysis]\nthreshold = 0.75\n", "x").unwrap();
        assert_eq!(c.analysis.threshold, 0.75);
        assert_eq!(c.writer, Writer::default());
        assert!(Config::parse("[analysis]\nthreshold = 1.5\n", "x").is_err());
        assert!(Config::parse("[writer]\nbatch_records = 0\n", "x").is_err());
    }

    #[test]
    fn missing_file_gives_defaults() {
        let (c, existed) = Config::load(Path::new("/nonexistent/btda.toml")).unwrap();
        assert!(!existed);
        assert_eq!(c, Config::default());
    }
}
