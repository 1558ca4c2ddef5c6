//! glibc's per-thread allocation caches, turned off for the long-running commands.
//!
//! glibc keeps a small cache of freed blocks in every thread (the *tcache*: up to 7 blocks
//! in each of 64 size classes up to 1,032 bytes). A block freed into it stays reserved
//! for that thread until the same thread allocates again or exits. btda runs thousands
//! of threads that never exit (2,048 visit workers and 2,048 incoming handlers with the
//! defaults), and each of them is used now and then, so over hours more and more of them
//! hold a full cache: in the one-hour soak the resident size kept growing (+7 % in the
//! last half hour on a fixed population) while the live heap stayed flat (heaptrack).
//! With the caches off the same soak settles (BENCHMARKS.md, "Soak").
//!
//! The cache size is a glibc *tunable*, read once when the process starts, from the
//! `GLIBC_TUNABLES` environment variable; no call changes it later. So `btda run` and
//! `btda demo` set it and execute themselves again (same process id, same arguments)
//! before any thread starts. A user who sets `glibc.malloc.tcache_count` themselves keeps
//! their value; other tunables they set are kept.

/// The tunable that turns the per-thread caches off.
pub const CACHES_OFF: &str = "glibc.malloc.tcache_count=0";

/// The `GLIBC_TUNABLES` value to run with, or `None` when the current value (`current`)
/// already names a tcache count (the caller's choice, kept as it is).
pub fn tunables_with_caches_off(current: Option<&str>) -> Option<String> {
    match current.map(str::trim).filter(|c| !c.is_empty()) {
        None => Some(CACHES_OFF.to_string()),
        Some(c)
            if c.split(':')
                .any(|t| t.starts_with("glibc.malloc.tcache_count=")) =>
        {
            None
        }
        Some(c) => Some(format!("{c}:{CACHES_OFF}")),
    }
}

/// Executes the current program again with the per-thread caches off, unless they are
/// off already (or the user chose a count). Returns only when it did not execute: the
/// count was set already, this is not a glibc build, or `exec` failed (the error is
/// returned; the program can go on with the default caches). Call it first thing in
/// `main`, before any thread exists.
pub fn reexec_with_caches_off() -> std::io::Result<()> {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return Ok(());
    }
    let current = std::env::var("GLIBC_TUNABLES").ok();
    let Some(tunables) = tunables_with_caches_off(current.as_deref()) else {
        return Ok(());
    };
    exec_self(&tunables)
}

#[cfg(unix)]
fn exec_self(tunables: &str) -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()?;
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        command.arg0(arg0);
    }
    // `exec` only returns on failure.
    Err(command.args(args).env("GLIBC_TUNABLES", tunables).exec())
}

#[cfg(not(unix))]
fn exec_self(_tunables: &str) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caches_are_turned_off_and_other_tunables_kept() {
        assert_eq!(tunables_with_caches_off(None).as_deref(), Some(CACHES_OFF));
        assert_eq!(
            tunables_with_caches_off(Some(" ")).as_deref(),
            Some(CACHES_OFF)
        );
        assert_eq!(
            tunables_with_caches_off(Some("glibc.malloc.arena_max=2")).as_deref(),
            Some("glibc.malloc.arena_max=2:glibc.malloc.tcache_count=0")
        );
    }

    #[test]
    fn a_count_the_user_chose_is_kept() {
        assert_eq!(
            tunables_with_caches_off(Some("glibc.malloc.tcache_count=3")),
            None
        );
        assert_eq!(
            tunables_with_caches_off(Some("glibc.malloc.arena_max=2:glibc.malloc.tcache_count=7")),
            None
        );
        // A different tunable that merely starts alike is not a count.
        assert!(tunables_with_caches_off(Some("glibc.malloc.tcache_max=64")).is_some());
    }
}
