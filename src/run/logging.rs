//! Logging set-up: a file log per run and terse terminal output.
//!
//! Defaults: the file gets `info`, the terminal `warn` (the status line is printed
//! separately). Each `-v` raises both by one level, each `-q` lowers the terminal.

use std::path::Path;

use log::LevelFilter;
use simplelog::{
    ColorChoice, CombinedLogger, ConfigBuilder, SharedLogger, TermLogger, TerminalMode, WriteLogger,
};

const LEVELS: [LevelFilter; 6] = [
    LevelFilter::Off,
    LevelFilter::Error,
    LevelFilter::Warn,
    LevelFilter::Info,
    LevelFilter::Debug,
    LevelFilter::Trace,
];

fn level(base: usize, verbosity: i8) -> LevelFilter {
    let base = i64::try_from(base).unwrap_or(5);
    let i = (base + i64::from(verbosity)).clamp(0, 5) as usize;
    LEVELS[i]
}

/// Starts logging to the terminal and, when `file` is given, to that file. Safe to call
/// once per process; a second call is ignored.
pub fn init(file: Option<&Path>, verbosity: i8) -> std::io::Result<()> {
    let config = ConfigBuilder::new()
        .set_time_format_rfc3339()
        .set_thread_level(LevelFilter::Off)
        .set_target_level(LevelFilter::Off)
        .build();
    let mut loggers: Vec<Box<dyn SharedLogger>> = vec![TermLogger::new(
        level(2, verbosity),
        config.clone(),
        TerminalMode::Stderr,
        ColorChoice::Never,
    )];
    if let Some(path) = file {
        let f = std::fs::File::create(path)?;
        loggers.push(WriteLogger::new(level(3, verbosity.max(0)), config, f));
    }
    let _ = CombinedLogger::init(loggers);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn levels() {
        use super::*;
        assert_eq!(level(2, 0), LevelFilter::Warn);
        assert_eq!(level(2, 2), LevelFilter::Debug);
        assert_eq!(level(2, -1), LevelFilter::Error);
        assert_eq!(level(2, -9), LevelFilter::Off);
        assert_eq!(level(3, 9), LevelFilter::Trace);
    }
}
