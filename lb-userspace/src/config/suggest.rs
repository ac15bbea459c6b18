//! Advice on a config file: the nearest valid name when an error is about a typo, and
//! warnings for settings that are valid but likely to hurt in production.
//!
//! Suggestions work on the messages themselves (serde's "unknown field `x`, expected one
//! of ..." and our own "unknown ... \"x\"; expected \"a\" or \"b\""), so every table and
//! every enumerated value gets them without listing keys twice.
//!
//! Warnings never fail `lb check`: an operator may have a reason for each of them.

use crate::config::{AttachMode, Config, ServiceMode};
use std::{collections::HashSet, net::IpAddr};

/// Smallest Jaro-Winkler similarity for a suggestion: below it the "nearest" name is a
/// guess that would mislead more than help (clap uses a similar cut-off).
pub const MIN_SIMILARITY: f64 = 0.8;

/// The candidate nearest to `unknown`, if any is close enough to be a likely typo.
pub fn nearest<'a>(unknown: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let mut best: Option<(f64, &str)> = None;
    for &c in candidates {
        if c == unknown {
            return None;
        }
        let score = strsim::jaro_winkler(unknown, c);
        if score >= MIN_SIMILARITY && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Parses an "unknown name" message into the unknown name and the valid ones.
///
/// Understands serde's `unknown field `x`, expected one of `a`, `b``, `unknown variant`
/// and our validators' `unknown mode "x"; expected "a", "b" or "c"`.
fn unknown_and_expected(message: &str) -> Option<(String, Vec<String>)> {
    let idx = message.find("unknown ")?;
    let rest = &message[idx..];
    let (before, after) = rest.split_once("expected")?;
    let quote = if before.contains('`') { '`' } else { '"' };
    let unknown = quoted(before, quote).into_iter().next()?;
    let expected = quoted(after, quote);
    (!expected.is_empty()).then_some((unknown, expected))
}

/// Every `quote`-delimited string in `s`, in order.
fn quoted(s: &str, quote: char) -> Vec<String> {
    s.split(quote)
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// `message` with ` (did you mean `y`?)` appended when it reports an unknown name and a
/// valid one is close to it; otherwise `message` unchanged.
pub fn with_suggestion(message: &str) -> String {
    let Some((unknown, expected)) = unknown_and_expected(message) else {
        return message.to_string();
    };
    let names: Vec<&str> = expected.iter().map(String::as_str).collect();
    match nearest(&unknown, &names) {
        Some(n) => format!("{message} (did you mean `{n}`?)"),
        None => message.to_string(),
    }
}

/// A valid but risky setting, named by its dotted key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// Dotted key, e.g. `service[0].server` or `vrrp[1].priority`.
    pub key: String,
    /// What the risk is and what to do about it.
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl Config {
    /// Warnings for this config, reading this machine's interface addresses to tell
    /// whether a priority-255 VRRP node really owns its VIPs.
    pub fn warnings(&self) -> Vec<Warning> {
        self.warnings_with(&|interface| {
            crate::vrrp::iface::read(interface)
                .ok()
                .flatten()
                .map(|i| i.addrs.into_iter().collect())
                .unwrap_or_default()
        })
    }

    /// Every warning for this config, in file order; `local_addrs(interface)` gives the
    /// addresses configured on an interface (tests pass a fixed answer).
    ///
    /// This is the one list of risky-setting checks: add new ones here (for instance "no
    /// health checks on a service's servers" once the health keys exist).
    pub fn warnings_with(&self, local_addrs: &dyn Fn(&str) -> HashSet<IpAddr>) -> Vec<Warning> {
        let mut out = Vec::new();
        let mut warn = |key: String, message: String| out.push(Warning { key, message });

        if self.xdp.mode == AttachMode::Generic {
            warn(
                "xdp.mode".into(),
                "generic XDP runs in the kernel's slow path after the socket buffer is built; \
                 use \"native\" unless the driver lacks XDP support"
                    .into(),
            );
        }
        for (i, s) in self.services.iter().enumerate() {
            if s.mode != ServiceMode::Http {
                continue;
            }
            let Some(h) = &s.http else { continue };
            if h.retries == 0 && h.redispatch {
                warn(
                    format!("service[{i}].http.redispatch"),
                    format!(
                        "service {:?}: redispatch only acts on a retry, and retries = 0: \
                         a failed connect is never sent to another server",
                        s.name
                    ),
                );
            }
            if h.servers.len() == 1 {
                warn(
                    format!("service[{i}].server"),
                    format!(
                        "service {:?} has a single server: when it fails, every request fails",
                        s.name
                    ),
                );
            }
        }
        for (i, v) in self.vrrp.iter().enumerate() {
            if v.priority != 255 {
                continue;
            }
            let local = local_addrs(&v.interface);
            let foreign: Vec<String> = v
                .vips
                .iter()
                .filter(|a| !local.contains(&a.addr))
                .map(|a| a.addr.to_string())
                .collect();
            if !foreign.is_empty() {
                warn(
                    format!("vrrp[{i}].priority"),
                    format!(
                        "instance {:?}: priority 255 claims address ownership (RFC 5798), but {} \
                         is not an address of {} on this machine; use 1-254 on nodes that \
                         do not own the VIPs",
                        v.name,
                        foreign.join(", "),
                        v.interface
                    ),
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn serde_unknown_field_gets_nearest_key() {
        let m = "unknown field `forwardfr`, expected one of `balance`, `cookie`, `forwardfor`, `httpclose`";
        assert_eq!(
            with_suggestion(m),
            format!("{m} (did you mean `forwardfor`?)")
        );
        let m = "unknown field `interfce`, expected `interface`";
        assert!(with_suggestion(m).ends_with("(did you mean `interface`?)"));
        let m = "unknown field `zzz`, expected one of `balance`, `cookie`";
        assert_eq!(with_suggestion(m), m, "nothing close: no guess");
        let m = "unknown field `x`, there are no fields";
        assert_eq!(with_suggestion(m), m);
    }

    #[test]
    fn validator_unknown_value_gets_nearest_value() {
        let m = "unknown service mode \"htpp\"; expected \"pass\", \"http\", \"dsr\" or \"ipip\"";
        assert!(with_suggestion(m).ends_with("(did you mean `http`?)"));
        let m = "unknown attach mode \"nativ\"; expected \"native\" or \"generic\"";
        assert!(with_suggestion(m).ends_with("(did you mean `native`?)"));
        assert_eq!(with_suggestion("not a port"), "not a port");
        assert_eq!(with_suggestion("unknown \"x"), "unknown \"x");
    }

    fn cfg(text: &str) -> Config {
        crate::config::parse(Path::new("t.toml"), text).expect("valid")
    }

    #[test]
    fn warnings_list() {
        let c = cfg(concat!(
            "[xdp]\ninterface = \"eth0\"\nmode = \"generic\"\n",
            "[[service]]\nname = \"w\"\nvip = \"198.18.0.99\"\nport = 80\nmode = \"http\"\n",
            "[service.http]\nretries = 0\nredispatch = true\n",
            "[[service.server]]\nname = \"a\"\naddress = \"198.18.0.102:80\"\n",
            "[[vrrp]]\nname = \"v\"\ninterface = \"eth0\"\nvrid = 1\npriority = 255\n",
            "vips = [\"198.18.0.99/24\"]\n",
        ));
        let none = |_: &str| HashSet::new();
        let keys: Vec<String> = c.warnings_with(&none).into_iter().map(|w| w.key).collect();
        assert_eq!(
            keys,
            [
                "xdp.mode",
                "service[0].http.redispatch",
                "service[0].server",
                "vrrp[0].priority"
            ]
        );
        let owner = |_: &str| HashSet::from(["198.18.0.99".parse().expect("ip")]);
        assert_eq!(c.warnings_with(&owner).len(), 3, "an owner may use 255");
    }
}
