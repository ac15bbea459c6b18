//! `[global]`: process-wide settings. `user`/`group`: once set up (maps pinned, XDP
//! attached, listeners bound, admin socket open), `lb run` switches to this user and group
//! and keeps only the capabilities it needs at run time (see `crate::privdrop`).

use serde::Deserialize;
use toml::Spanned;

/// `[global]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGlobal {
    /// User name or numeric uid to run as after setup.
    pub user: Option<Spanned<String>>,
    /// Group name or numeric gid; default: the user's primary group.
    pub group: Option<Spanned<String>>,
}

/// Validated `[global]` settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GlobalConfig {
    /// Who the daemon runs as after setup; `None` stays root.
    pub run_as: Option<RunAs>,
}

/// The user (and group) `lb run` drops to. Names are looked up when the daemon drops
/// privileges, not by `lb check`, so a config can be checked on another machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunAs {
    /// User name or numeric uid.
    pub user: String,
    /// Group name or numeric gid; `None`: the user's primary group.
    pub group: Option<String>,
}

/// A user or group name as `useradd` accepts it, or a number.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '$'))
        && !s.starts_with('-')
}

impl RawGlobal {
    /// Checks the names; on error returns (byte offset, key, message).
    pub fn validate(self) -> Result<GlobalConfig, (usize, &'static str, String)> {
        for (key, v) in [("global.user", &self.user), ("global.group", &self.group)] {
            if let Some(v) = v {
                if !valid_name(v.get_ref()) {
                    return Err((
                        v.span().start,
                        key,
                        format!("{:?} is not a user or group name or number", v.get_ref()),
                    ));
                }
            }
        }
        let run_as = match (self.user, self.group) {
            (None, None) => None,
            (Some(u), g) => Some(RunAs {
                user: u.into_inner(),
                group: g.map(Spanned::into_inner),
            }),
            (None, Some(g)) => {
                return Err((
                    g.span().start,
                    "global.group",
                    "`group` needs `user` too (lb drops privileges by switching user)".into(),
                ))
            }
        };
        Ok(GlobalConfig { run_as })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_are_accepted() {
        for ok in ["lb", "nobody", "65534", "svc_lb-1", "ad.user"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-x", "a b", "root:root", "a/b", &"x".repeat(33)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
