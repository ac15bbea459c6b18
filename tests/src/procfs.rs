//! Reading a process's credentials from `/proc/<pid>/status` (and its threads'), for the
//! tests that check `lb run` dropped to its configured user with only the capabilities it
//! needs: what the kernel says, not what the daemon logs.

use anyhow::{Context, Result};
use std::path::Path;

/// The credentials one `status` file shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creds {
    /// `Uid:` (real, effective, saved, filesystem).
    pub uids: Vec<u32>,
    /// `Gid:` (real, effective, saved, filesystem).
    pub gids: Vec<u32>,
    /// `CapEff:`, the effective capability mask.
    pub cap_eff: u64,
}

/// Parses the text of a `/proc/<pid>[/task/<tid>]/status` file.
pub fn creds(status: &str) -> Result<Creds> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .with_context(|| format!("no {name} in status"))
    };
    let ids = |v: &str| -> Vec<u32> {
        v.split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect()
    };
    Ok(Creds {
        uids: ids(field("Uid:")?),
        gids: ids(field("Gid:")?),
        cap_eff: u64::from_str_radix(field("CapEff:")?.trim(), 16)?,
    })
}

/// The credentials in the status file at `path`, and its text (for error messages).
pub fn read_creds(path: impl AsRef<Path>) -> Result<(Creds, String)> {
    let path = path.as_ref();
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok((creds(&text)?, text))
}

/// The credentials of process `pid` (its main thread).
pub fn process_creds(pid: u32) -> Result<Creds> {
    Ok(read_creds(format!("/proc/{pid}/status"))?.0)
}
