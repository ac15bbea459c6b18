//! `[admin]`: where the admin socket (`lb show ...`, `lb set ...`, `lb reload`) listens.

use serde::Deserialize;
use std::path::PathBuf;
use toml::Spanned;

/// Directory of the default socket: `/run/lb/<instance>.sock`.
pub const DEFAULT_SOCKET_DIR: &str = "/run/lb";
/// Default socket permissions: only the daemon's user (root) may use it.
pub const DEFAULT_SOCKET_MODE: u32 = 0o600;

/// `[admin]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// Socket path.
    pub socket: Option<String>,
    /// Permission bits as an octal string, e.g. "0660".
    pub mode: Option<Spanned<String>>,
}

/// Validated admin socket settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminConfig {
    /// Socket path.
    pub socket: PathBuf,
    /// Permission bits.
    pub mode: u32,
}

/// The default socket path of an instance.
pub fn default_socket(instance: &str) -> PathBuf {
    PathBuf::from(DEFAULT_SOCKET_DIR).join(format!("{instance}.sock"))
}

impl RawAdmin {
    /// Checks the mode; on error returns (byte offset, message).
    pub fn validate(self, instance: &str) -> Result<AdminConfig, (usize, String)> {
        let mode = match self.mode {
            None => DEFAULT_SOCKET_MODE,
            Some(m) => {
                let at = m.span().start;
                let v = m.into_inner();
                u32::from_str_radix(v.trim_start_matches("0o"), 8)
                    .ok()
                    .filter(|m| *m <= 0o777)
                    .ok_or((at, format!("{v:?} is not a permission mode like \"0600\"")))?
            }
        };
        Ok(AdminConfig {
            socket: self
                .socket
                .map(PathBuf::from)
                .unwrap_or_else(|| default_socket(instance)),
            mode,
        })
    }
}
