//! Health-check keys of the config: per server (`check`, `inter`, `rise`, `observe`...)
//! and per service (`httpchk`, `timeout_check`, `disable_on_404`), with HAProxy's names,
//! defaults and duration syntax, so an HAProxy `server` line translates key by key.
//!
//! The raw structs are meant to be merged into the service and server tables: copy the
//! fields in (serde's `flatten` would lose `toml::Spanned` positions and does not work with
//! `deny_unknown_fields`), then build a `RawServerCheck`/`RawHealth` from them and call
//! `validate`. Errors carry the byte offset, the full dotted key and a message, ready for
//! `ConfigError::invalid`.

use crate::health::{
    check::{HttpCheck, Probe},
    counter::Intervals,
    observe::{
        ObserveLayer, ObserveSettings, OnError, DEFAULT_ERROR_LIMIT as OBSERVE_DEFAULT_ERROR_LIMIT,
    },
    task::CheckSettings,
};
use serde::{de, Deserialize, Deserializer};
use std::time::Duration;
use toml::Spanned;

/// `inter` when not given (HAProxy: 2s).
pub const DEFAULT_INTER: Duration = Duration::from_secs(2);
/// `rise` when not given.
pub const DEFAULT_RISE: u32 = 2;
/// `fall` when not given.
pub const DEFAULT_FALL: u32 = 3;
/// `error_limit` when not given.
pub const DEFAULT_ERROR_LIMIT: u32 = OBSERVE_DEFAULT_ERROR_LIMIT;
/// `on_error` when not given.
pub const DEFAULT_ON_ERROR: OnError = OnError::FailCheck;
/// Largest `rise`/`fall`: beyond this a server would never change state in practice.
pub const MAX_RISE_FALL: u32 = 10_000;
/// Largest `error_limit`.
pub const MAX_ERROR_LIMIT: u32 = 1_000_000;
/// Longest duration accepted: HAProxy's timers are signed 32-bit milliseconds (~24.8 days).
pub const MAX_DURATION: Duration = Duration::from_millis(i32::MAX as u64);

/// A rejected health-check value: where, which key, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct HealthConfigError {
    /// Byte offset of the value in the config text.
    pub at: usize,
    /// Full dotted key, e.g. `service[0].server[1].inter`.
    pub key: String,
    /// What is wrong and what would be right.
    pub message: String,
}

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing given.
    #[error("empty duration")]
    Empty,
    /// Not `<integer>[unit]`.
    #[error("{0:?} is not a duration (an integer with an optional unit us, ms, s, m, h, d; no unit = ms)")]
    Syntax(String),
    /// Larger than [`MAX_DURATION`].
    #[error("{0:?} is too long (at most {max}ms)", max = MAX_DURATION.as_millis())]
    TooLong(String),
}

/// Parses an HAProxy duration: an unsigned integer with an optional unit `us`, `ms`, `s`,
/// `m`, `h` or `d`; a bare number is milliseconds (`"2000"` = 2 s).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(DurationError::Empty);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(DurationError::Syntax(text.to_string()));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| DurationError::TooLong(text.to_string()))?;
    let micros_per: u64 = match unit {
        "us" => 1,
        "" | "ms" => 1_000,
        "s" => 1_000_000,
        "m" => 60_000_000,
        "h" => 3_600_000_000,
        "d" => 86_400_000_000,
        _ => return Err(DurationError::Syntax(text.to_string())),
    };
    let micros = n
        .checked_mul(micros_per)
        .ok_or_else(|| DurationError::TooLong(text.to_string()))?;
    let d = Duration::from_micros(micros);
    if d > MAX_DURATION {
        return Err(DurationError::TooLong(text.to_string()));
    }
    Ok(d)
}

/// A duration as written in the file: a string (`"2s"`, `"500ms"`, `"2000"`) or a bare
/// integer of milliseconds (`inter = 2000`), as HAProxy users write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawDuration(pub String);

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = RawDuration;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration like \"2s\" or \"500ms\", or an integer of milliseconds")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawDuration, E> {
                Ok(RawDuration(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawDuration, E> {
                if v < 0 {
                    return Err(E::custom(format!("{v} is negative; durations are >= 0")));
                }
                Ok(RawDuration(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawDuration, E> {
                Ok(RawDuration(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Health keys of one server (`[[service.server]]`), HAProxy's `server` keywords.
#[derive(Debug, Default, Deserialize)]
pub struct RawServerCheck {
    /// Enable active checks; default false (HAProxy: `check`).
    pub check: Option<bool>,
    /// Interval at full health; default [`DEFAULT_INTER`].
    pub inter: Option<Spanned<RawDuration>>,
    /// Interval while going up or down; default `inter`.
    pub fastinter: Option<Spanned<RawDuration>>,
    /// Interval while DOWN; default `inter`.
    pub downinter: Option<Spanned<RawDuration>>,
    /// Successes to go UP; default [`DEFAULT_RISE`].
    pub rise: Option<Spanned<i64>>,
    /// Failures to go DOWN; default [`DEFAULT_FALL`].
    pub fall: Option<Spanned<i64>>,
    /// Check port when it differs from the traffic port.
    pub port: Option<Spanned<i64>>,
    /// Weight ramp after coming back UP; default none.
    pub slowstart: Option<Spanned<RawDuration>>,
    /// `layer4` or `layer7`: passive observation of real traffic; default off.
    pub observe: Option<Spanned<String>>,
    /// Consecutive observed errors that trigger `on_error`; default [`DEFAULT_ERROR_LIMIT`].
    pub error_limit: Option<Spanned<i64>>,
    /// `fastinter`, `fail-check` (default), `sudden-death` or `mark-down`.
    pub on_error: Option<Spanned<String>>,
}

/// A server's validated health settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerCheck {
    /// Whether a check task runs for this server (without it the server is always UP
    /// for health purposes: HAProxy's "no check").
    pub enabled: bool,
    /// Resolved intervals (fastinter/downinter default to inter).
    pub intervals: Intervals,
    /// Successes to go UP.
    pub rise: u32,
    /// Failures to go DOWN.
    pub fall: u32,
    /// Check port override.
    pub port: Option<u16>,
    /// Weight ramp duration.
    pub slowstart: Option<Duration>,
    /// Passive observation.
    pub observe: Option<ObserveSettings>,
}

impl Default for ServerCheck {
    /// HAProxy's defaults with checks off.
    fn default() -> Self {
        ServerCheck {
            enabled: false,
            intervals: Intervals::uniform(DEFAULT_INTER),
            rise: DEFAULT_RISE,
            fall: DEFAULT_FALL,
            port: None,
            slowstart: None,
            observe: None,
        }
    }
}

/// Health keys of one service (`[[service]]` or its `[service.health]` table).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    /// `option httpchk`: `"[METHOD] [URI] [VERSION]"`, e.g. `"HEAD /check.txt HTTP/1.0"`;
    /// `""` means HAProxy's default `OPTIONS / HTTP/1.0`. Absent: TCP connect checks.
    pub httpchk: Option<Spanned<String>>,
    /// Host header for HTTP/1.1 checks (HAProxy 2.x: `http-check send hdr Host ...`).
    pub httpchk_host: Option<Spanned<String>>,
    /// `timeout check`: extra read time after the connect; default: the check must finish
    /// within `inter`.
    pub timeout_check: Option<Spanned<RawDuration>>,
    /// `http-check disable-on-404`: a 404 puts the server in NOLB.
    #[serde(default)]
    pub disable_on_404: bool,
}

/// A service's validated check settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceHealth {
    /// TCP connect or HTTP check.
    pub probe: Probe,
    /// `timeout check`.
    pub timeout_check: Option<Duration>,
}

impl Default for ServiceHealth {
    /// TCP connect checks, no `timeout check`.
    fn default() -> Self {
        ServiceHealth {
            probe: Probe::Tcp,
            timeout_check: None,
        }
    }
}

fn invalid(at: usize, key: String, message: impl Into<String>) -> HealthConfigError {
    HealthConfigError {
        at,
        key,
        message: message.into(),
    }
}

fn duration(
    v: Option<Spanned<RawDuration>>,
    key: String,
    positive: bool,
) -> Result<Option<Duration>, HealthConfigError> {
    let Some(v) = v else { return Ok(None) };
    let at = v.span().start;
    let d = parse_duration(&v.get_ref().0).map_err(|e| invalid(at, key.clone(), e.to_string()))?;
    if positive && d.is_zero() {
        return Err(invalid(at, key, "must be greater than 0"));
    }
    Ok(Some(d))
}

fn bounded(v: &Spanned<i64>, key: String, min: u32, max: u32) -> Result<u32, HealthConfigError> {
    let n = *v.get_ref();
    u32::try_from(n)
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            invalid(
                v.span().start,
                key,
                format!("{n} is out of range ({min}-{max})"),
            )
        })
}

impl RawServerCheck {
    /// Validates with HAProxy's defaults. `prefix` is the server's dotted key with a
    /// trailing dot (`service[0].server[1].`), so errors name the full key.
    pub fn validate(self, prefix: &str) -> Result<ServerCheck, HealthConfigError> {
        let key = |k: &str| format!("{prefix}{k}");
        let inter = duration(self.inter, key("inter"), true)?.unwrap_or(DEFAULT_INTER);
        let fastinter = duration(self.fastinter, key("fastinter"), true)?.unwrap_or(inter);
        let downinter = duration(self.downinter, key("downinter"), true)?.unwrap_or(inter);
        let rise = match &self.rise {
            Some(v) => bounded(v, key("rise"), 1, MAX_RISE_FALL)?,
            None => DEFAULT_RISE,
        };
        let fall = match &self.fall {
            Some(v) => bounded(v, key("fall"), 1, MAX_RISE_FALL)?,
            None => DEFAULT_FALL,
        };
        let port = match &self.port {
            Some(v) => Some(bounded(v, key("port"), 1, 65535)? as u16),
            None => None,
        };
        let slowstart = duration(self.slowstart, key("slowstart"), false)?.filter(|d| !d.is_zero());
        let enabled = self.check.unwrap_or(false);

        let layer = match &self.observe {
            None => None,
            Some(v) => Some(match v.get_ref().as_str() {
                "layer4" => ObserveLayer::Layer4,
                "layer7" => ObserveLayer::Layer7,
                other => {
                    return Err(invalid(
                        v.span().start,
                        key("observe"),
                        format!("unknown mode {other:?}; expected \"layer4\" or \"layer7\""),
                    ))
                }
            }),
        };
        let error_limit = match &self.error_limit {
            Some(v) => Some((
                bounded(v, key("error_limit"), 1, MAX_ERROR_LIMIT)?,
                v.span().start,
            )),
            None => None,
        };
        let on_error = match &self.on_error {
            None => None,
            Some(v) => Some((
                match v.get_ref().as_str() {
                    "fastinter" => OnError::Fastinter,
                    "fail-check" => OnError::FailCheck,
                    "sudden-death" => OnError::SuddenDeath,
                    "mark-down" => OnError::MarkDown,
                    other => {
                        return Err(invalid(
                            v.span().start,
                            key("on_error"),
                            format!(
                                "unknown action {other:?}; expected \"fastinter\", \"fail-check\", \"sudden-death\" or \"mark-down\""
                            ),
                        ))
                    }
                },
                v.span().start,
            )),
        };
        let observe = match layer {
            Some(layer) => {
                if !enabled {
                    let at = self.observe.as_ref().map_or(0, |v| v.span().start);
                    return Err(invalid(
                        at,
                        key("observe"),
                        "needs check = true (observation adjusts the check's health counter)",
                    ));
                }
                Some(ObserveSettings {
                    layer,
                    error_limit: error_limit.map_or(DEFAULT_ERROR_LIMIT, |(n, _)| n),
                    on_error: on_error.map_or(DEFAULT_ON_ERROR, |(a, _)| a),
                })
            }
            None => {
                if let Some((_, at)) = error_limit {
                    return Err(invalid(
                        at,
                        key("error_limit"),
                        "has no effect without observe",
                    ));
                }
                if let Some((_, at)) = on_error {
                    return Err(invalid(
                        at,
                        key("on_error"),
                        "has no effect without observe",
                    ));
                }
                None
            }
        };
        Ok(ServerCheck {
            enabled,
            intervals: Intervals {
                inter,
                fastinter,
                downinter,
            },
            rise,
            fall,
            port,
            slowstart,
            observe,
        })
    }
}

impl RawHealth {
    /// Validates. `prefix` is the dotted key of the table holding these keys with a
    /// trailing dot; `table_at` is its offset (used for `disable_on_404`, a plain bool).
    pub fn validate(
        self,
        prefix: &str,
        table_at: usize,
    ) -> Result<ServiceHealth, HealthConfigError> {
        let key = |k: &str| format!("{prefix}{k}");
        let timeout_check = duration(self.timeout_check, key("timeout_check"), true)?;
        let probe = match self.httpchk {
            None => {
                if self.disable_on_404 {
                    return Err(invalid(
                        table_at,
                        key("disable_on_404"),
                        "needs httpchk (it judges HTTP check answers)",
                    ));
                }
                if let Some(h) = &self.httpchk_host {
                    return Err(invalid(
                        h.span().start,
                        key("httpchk_host"),
                        "needs httpchk",
                    ));
                }
                Probe::Tcp
            }
            Some(line) => {
                let at = line.span().start;
                let mut http = HttpCheck::parse(line.get_ref())
                    .map_err(|e| invalid(at, key("httpchk"), e.to_string()))?;
                if let Some(h) = &self.httpchk_host {
                    http = http
                        .with_host(h.get_ref())
                        .map_err(|e| invalid(h.span().start, key("httpchk_host"), e.to_string()))?;
                }
                http.disable_on_404 = self.disable_on_404;
                Probe::Http(http)
            }
        };
        Ok(ServiceHealth {
            probe,
            timeout_check,
        })
    }
}

/// Combines a server's and its service's settings into what the check task runs on.
/// `connect_timeout` is the service's `timeout connect`, if it has one.
pub fn check_settings(
    server: &ServerCheck,
    service: &ServiceHealth,
    connect_timeout: Option<Duration>,
) -> CheckSettings {
    CheckSettings {
        intervals: server.intervals,
        rise: server.rise,
        fall: server.fall,
        timeout_check: service.timeout_check,
        connect_timeout,
        observe: server.observe,
        spread_checks: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ms = Duration::from_millis;
        for (s, d) in [
            ("2000", ms(2000)),
            ("2s", ms(2000)),
            ("500ms", ms(500)),
            ("1500us", Duration::from_micros(1500)),
            ("3m", ms(180_000)),
            ("1h", ms(3_600_000)),
            ("1d", ms(86_400_000)),
            (" 10s ", ms(10_000)),
            ("0", ms(0)),
        ] {
            assert_eq!(parse_duration(s), Ok(d), "{s}");
        }
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        for bad in ["s", "2 s", "2S", "-1", "1.5s", "2sec", "0x10", "5w", "+1"] {
            assert!(
                matches!(parse_duration(bad), Err(DurationError::Syntax(_))),
                "{bad}"
            );
        }
        for long in ["25d", "99999999999999999999", "18446744073709551615d"] {
            assert!(
                matches!(parse_duration(long), Err(DurationError::TooLong(_))),
                "{long}"
            );
        }
        assert_eq!(parse_duration("24d"), Ok(ms(24 * 86_400_000)));
    }

    fn server(toml_text: &str) -> Result<ServerCheck, HealthConfigError> {
        let raw: RawServerCheck = toml::from_str(toml_text).expect("toml");
        raw.validate("service[0].server[1].")
    }

    fn health(toml_text: &str) -> Result<ServiceHealth, HealthConfigError> {
        let raw: RawHealth = toml::from_str(toml_text).expect("toml");
        raw.validate("service[0].", 0)
    }

    #[test]
    fn server_defaults_and_values() {
        assert_eq!(server("").unwrap(), ServerCheck::default());
        let s = server(
            r#"
            check = true
            inter = "10s"
            fastinter = 500
            rise = 5
            fall = 1
            port = 8080
            slowstart = "30s"
            observe = "layer7"
            on_error = "mark-down"
            "#,
        )
        .unwrap();
        assert!(s.enabled);
        assert_eq!(
            s.intervals,
            Intervals {
                inter: Duration::from_secs(10),
                fastinter: Duration::from_millis(500),
                downinter: Duration::from_secs(10),
            }
        );
        assert_eq!((s.rise, s.fall, s.port), (5, 1, Some(8080)));
        assert_eq!(s.slowstart, Some(Duration::from_secs(30)));
        assert_eq!(
            s.observe,
            Some(ObserveSettings {
                layer: ObserveLayer::Layer7,
                error_limit: DEFAULT_ERROR_LIMIT,
                on_error: OnError::MarkDown,
            })
        );
        assert_eq!(server("slowstart = \"0s\"").unwrap().slowstart, None);
    }

    #[test]
    fn server_errors_name_key_and_position() {
        let text = "check = true\ninter = \"2 s\"\n";
        let e = server(text).unwrap_err();
        assert_eq!(e.key, "service[0].server[1].inter");
        assert_eq!(&text[e.at..e.at + 5], "\"2 s\"");
        for (t, key, msg) in [
            ("inter = 0", "inter", "greater than 0"),
            ("rise = 0", "rise", "out of range"),
            ("fall = -3", "fall", "out of range"),
            ("port = 70000", "port", "out of range"),
            (
                "check = true\nobserve = \"layer5\"",
                "observe",
                "unknown mode",
            ),
            ("observe = \"layer4\"", "observe", "needs check"),
            ("error_limit = 3", "error_limit", "without observe"),
            (
                "check = true\nobserve = \"layer4\"\non_error = \"explode\"",
                "on_error",
                "unknown action",
            ),
            (
                "check = true\nobserve = \"layer4\"\nerror_limit = 0",
                "error_limit",
                "out of range",
            ),
            ("downinter = \"30d\"", "downinter", "too long"),
        ] {
            let e = server(t).unwrap_err();
            assert_eq!(e.key, format!("service[0].server[1].{key}"), "{t}");
            assert!(e.message.contains(msg), "{t}: {}", e.message);
        }
        // A negative integer duration is a TOML shape error with a clear message.
        let e = toml::from_str::<RawServerCheck>("inter = -5").unwrap_err();
        assert!(e.to_string().contains("negative"), "{e}");
    }

    #[test]
    fn service_health() {
        assert_eq!(health("").unwrap(), ServiceHealth::default());
        let h = health(
            "httpchk = \"HEAD /check.txt HTTP/1.0\"\ntimeout_check = \"1s\"\ndisable_on_404 = true",
        )
        .unwrap();
        assert_eq!(h.timeout_check, Some(Duration::from_secs(1)));
        let Probe::Http(c) = h.probe else {
            panic!("not http")
        };
        assert_eq!(c.request_line(), "HEAD /check.txt HTTP/1.0");
        assert!(c.disable_on_404);
        let h = health("httpchk = \"\"").unwrap();
        assert_eq!(h.probe, Probe::Http(HttpCheck::default()));
        let h =
            health("httpchk = \"GET /h HTTP/1.1\"\nhttpchk_host = \"www.example.com\"").unwrap();
        let Probe::Http(c) = h.probe else {
            panic!("not http")
        };
        assert_eq!(c.host.as_deref(), Some("www.example.com"));
        for (t, key) in [
            ("disable_on_404 = true", "disable_on_404"),
            ("httpchk_host = \"x\"", "httpchk_host"),
            ("httpchk = \"GET / HTTP/3\"", "httpchk"),
            (
                "httpchk = \"GET /\"\nhttpchk_host = \"a b\"",
                "httpchk_host",
            ),
            ("timeout_check = \"0\"", "timeout_check"),
        ] {
            assert_eq!(
                health(t).unwrap_err().key,
                format!("service[0].{key}"),
                "{t}"
            );
        }
    }

    #[test]
    fn combined_settings() {
        let s = server("check = true\ninter = \"1s\"").unwrap();
        let h = health("timeout_check = \"500ms\"").unwrap();
        let c = check_settings(&s, &h, Some(Duration::from_secs(5)));
        assert_eq!(c.intervals.inter, Duration::from_secs(1));
        assert_eq!(c.timeout_check, Some(Duration::from_millis(500)));
        assert_eq!(c.connect_timeout, Some(Duration::from_secs(5)));
        assert_eq!((c.rise, c.fall), (DEFAULT_RISE, DEFAULT_FALL));
    }
}
