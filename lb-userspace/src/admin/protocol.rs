//! The admin socket's line protocol: one command per line in, the response text and an
//! empty line out. Commands follow HAProxy's stats socket (`show stat`, `set server
//! <backend>/<server> state drain`, `set weight ...`) so operators' habits and scripts
//! carry over.
//!
//! [`parse`] turns a line into an [`AdminCommand`] or a one-line [`ParseError`]; it never
//! panics, whatever the bytes, and a rejected line changes nothing. Error responses are
//! framed as [`ERROR_PREFIX`] + message, so the `lb` CLI can exit non-zero on them while
//! `socat` users still read a plain sentence.

use std::net::IpAddr;

/// Longest accepted command line, in bytes (without the newline).
pub const MAX_LINE: usize = 4096;
/// Starts every error response line on the wire.
pub const ERROR_PREFIX: &str = "ERR ";
/// Largest absolute weight (the same bound as the config's server weight).
pub const MAX_WEIGHT: u32 = 65535;
/// Longest piece of user input echoed back in an error.
const MAX_ECHO: usize = 64;

/// A `service/server` reference (HAProxy's `backend/server`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServerRef {
    /// Service name.
    pub service: String,
    /// Server name.
    pub server: String,
}

impl std::fmt::Display for ServerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.service, self.server)
    }
}

/// Administrative state set by an operator (independent of health).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminState {
    /// Normal: takes traffic when healthy (clears drain and maint).
    Ready,
    /// No new sessions or flows; existing ones finish.
    Drain,
    /// Maintenance: no traffic at all, existing L7 sessions are closed.
    Maint,
}

impl AdminState {
    /// The command word.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminState::Ready => "ready",
            AdminState::Drain => "drain",
            AdminState::Maint => "maint",
        }
    }
}

/// `set server <s> health ...`: forced health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForcedHealth {
    /// Full health, UP.
    Up,
    /// Full health, NOLB (HAProxy's `stopping`).
    Stopping,
    /// Health 0, DOWN.
    Down,
}

/// `set weight`: an absolute weight or a percentage of the configured weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weight {
    /// 0..=[`MAX_WEIGHT`]; 0 drains the server from new flows.
    Absolute(u32),
    /// 0..=100 % of the weight in the config file.
    Percent(u32),
}

/// Output format of `show stat` / `show info`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// HAProxy's CSV (`show stat`) or `Name: value` lines (`show info`).
    Default,
    /// JSON.
    Json,
}

/// `show flows <vip>` filter: an address with an optional port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VipFilter {
    /// The VIP address.
    pub addr: IpAddr,
    /// The service port, if given.
    pub port: Option<u16>,
}

/// A parsed admin command. The daemon's handler implements each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminCommand {
    /// `help`: list the commands.
    Help,
    /// `show stat [json]`: per service and server counters, HAProxy's CSV columns.
    ShowStat(OutputFormat),
    /// `show info [json]`: process information.
    ShowInfo(OutputFormat),
    /// `show servers state [service]`: HAProxy's server state dump.
    ShowServersState(Option<String>),
    /// `show flows [vip]`: L4 conntrack entries, optionally of one VIP.
    ShowFlows(Option<VipFilter>),
    /// `show vrrp`: membership role, priority, master.
    ShowVrrp,
    /// `set server <svc>/<srv> state ready|drain|maint`.
    SetState(ServerRef, AdminState),
    /// `set server <svc>/<srv> health up|stopping|down`.
    SetHealth(ServerRef, ForcedHealth),
    /// `set weight <svc>/<srv> <N>|<N>%` (also `set server <svc>/<srv> weight ...`).
    SetWeight(ServerRef, Weight),
    /// `disable server <svc>/<srv>`: enter maintenance (leaves drain alone).
    DisableServer(ServerRef),
    /// `enable server <svc>/<srv>`: leave maintenance (leaves drain alone).
    EnableServer(ServerRef),
    /// `reload`: re-read the config file and apply the difference.
    Reload,
    /// `quit`: close this connection (handled by the server, never by the handler).
    Quit,
}

/// Why a line was rejected. Each displays as one line, HAProxy-style.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not a command we know.
    #[error("Unknown command '{0}'. Try 'help'.")]
    Unknown(String),
    /// A server argument missing or not `service/server`.
    #[error("Require 'backend/server'.")]
    RequireServer,
    /// `set server <s> state` with a bad state.
    #[error("'set server <srv> state' expects 'ready', 'drain' and 'maint'.")]
    BadState,
    /// `set server <s> health` with a bad value.
    #[error("'set server <srv> health' expects 'up', 'stopping', or 'down'.")]
    BadHealth,
    /// `set server <s> <what>` with an unsupported `<what>`.
    #[error("'set server <srv>' only supports 'state', 'health' and 'weight'.")]
    BadSetServer,
    /// No weight given, or not a number.
    #[error("Require <weight> or <weight%>.")]
    RequireWeight,
    /// Absolute weight out of range.
    #[error("Absolute weight can only be between 0 and {MAX_WEIGHT} inclusive.")]
    WeightRange,
    /// Relative weight out of range.
    #[error("Relative weight can only be set between 0 and 100% inclusive.")]
    PercentRange,
    /// `show flows` with something that is not an address.
    #[error("Invalid VIP '{0}': expected an address, address:port or [v6]:port.")]
    BadVip(String),
    /// An unexpected extra word or option.
    #[error("Unexpected argument '{arg}' for '{command}'.")]
    Extra {
        /// The command.
        command: String,
        /// The first extra word.
        arg: String,
    },
    /// The line is not UTF-8.
    #[error("Command is not valid UTF-8.")]
    NotUtf8,
    /// The line exceeds [`MAX_LINE`].
    #[error("Command line too long (max {MAX_LINE} bytes).")]
    TooLong,
}

/// Help text listing the commands (the `help` response).
pub const HELP: &str = "\
The following commands are valid at this level:
  help                                   : this message
  show stat [json]                       : report counters for each service and server
  show info [json]                       : report information about the running process
  show servers state [service]           : dump the state of servers
  show flows [vip]                       : dump L4 connection tracking entries
  show vrrp                              : report the VRRP role, priority and master
  set server <svc>/<srv> state <st>      : set admin state: ready, drain or maint
  set server <svc>/<srv> health <h>      : force health: up, stopping or down
  set weight <svc>/<srv> <w>[%]          : set the weight (absolute, or % of configured)
  disable server <svc>/<srv>             : put a server in maintenance
  enable server <svc>/<srv>              : take a server out of maintenance
  reload                                 : re-read the config file and apply it
  quit                                   : close this connection";

/// Echo-safe rendering of user input inside an error message: bounded, no control chars.
fn echo(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(MAX_ECHO)
        .collect();
    if s.chars().count() > MAX_ECHO {
        out.push_str("...");
    }
    out
}

/// Parses one command line given as raw bytes (no trailing newline needed; a trailing
/// `\r` is ignored). `Ok(None)` for a blank line.
pub fn parse_bytes(line: &[u8]) -> Result<Option<AdminCommand>, ParseError> {
    if line.len() > MAX_LINE {
        return Err(ParseError::TooLong);
    }
    let text = std::str::from_utf8(line).map_err(|_| ParseError::NotUtf8)?;
    parse(text)
}

/// Parses one command line. `Ok(None)` for a blank line.
pub fn parse(line: &str) -> Result<Option<AdminCommand>, ParseError> {
    if line.len() > MAX_LINE {
        return Err(ParseError::TooLong);
    }
    let words: Vec<&str> = line.split_ascii_whitespace().collect();
    let Some(&first) = words.first() else {
        return Ok(None);
    };
    let unknown = |n: usize| ParseError::Unknown(echo(&words[..n.min(words.len())].join(" ")));
    let extra = |command: &str, arg: &str| ParseError::Extra {
        command: command.to_string(),
        arg: echo(arg),
    };
    let none_after = |n: usize, command: &str| match words.get(n) {
        Some(arg) => Err(extra(command, arg)),
        None => Ok(()),
    };
    let cmd = match first {
        "help" => {
            none_after(1, "help")?;
            AdminCommand::Help
        }
        "quit" => {
            none_after(1, "quit")?;
            AdminCommand::Quit
        }
        "reload" => {
            none_after(1, "reload")?;
            AdminCommand::Reload
        }
        "show" => match words.get(1).copied() {
            Some("stat") => AdminCommand::ShowStat(format(&words, "show stat")?),
            Some("info") => AdminCommand::ShowInfo(format(&words, "show info")?),
            Some("vrrp") => {
                none_after(2, "show vrrp")?;
                AdminCommand::ShowVrrp
            }
            Some("servers") => match words.get(2).copied() {
                Some("state") => {
                    none_after(4, "show servers state")?;
                    AdminCommand::ShowServersState(words.get(3).map(|s| s.to_string()))
                }
                _ => return Err(unknown(3)),
            },
            Some("flows") => {
                none_after(3, "show flows")?;
                AdminCommand::ShowFlows(match words.get(2) {
                    None => None,
                    Some(v) => Some(parse_vip(v)?),
                })
            }
            _ => return Err(unknown(2)),
        },
        "set" => match words.get(1).copied() {
            Some("server") => {
                let srv = server_ref(words.get(2))?;
                match words.get(3).copied() {
                    Some("state") => {
                        let st = match words.get(4).copied() {
                            Some("ready") => AdminState::Ready,
                            Some("drain") => AdminState::Drain,
                            Some("maint") => AdminState::Maint,
                            _ => return Err(ParseError::BadState),
                        };
                        none_after(5, "set server state")?;
                        AdminCommand::SetState(srv, st)
                    }
                    Some("health") => {
                        let h = match words.get(4).copied() {
                            Some("up") => ForcedHealth::Up,
                            Some("stopping") => ForcedHealth::Stopping,
                            Some("down") => ForcedHealth::Down,
                            _ => return Err(ParseError::BadHealth),
                        };
                        none_after(5, "set server health")?;
                        AdminCommand::SetHealth(srv, h)
                    }
                    Some("weight") => {
                        let w = weight(words.get(4))?;
                        none_after(5, "set server weight")?;
                        AdminCommand::SetWeight(srv, w)
                    }
                    _ => return Err(ParseError::BadSetServer),
                }
            }
            Some("weight") => {
                let srv = server_ref(words.get(2))?;
                let w = weight(words.get(3))?;
                none_after(4, "set weight")?;
                AdminCommand::SetWeight(srv, w)
            }
            _ => return Err(unknown(2)),
        },
        "disable" | "enable" => {
            if words.get(1).copied() != Some("server") {
                return Err(unknown(2));
            }
            let srv = server_ref(words.get(2))?;
            if first == "disable" {
                none_after(3, "disable server")?;
                AdminCommand::DisableServer(srv)
            } else {
                none_after(3, "enable server")?;
                AdminCommand::EnableServer(srv)
            }
        }
        _ => return Err(unknown(1)),
    };
    Ok(Some(cmd))
}

fn format(words: &[&str], command: &str) -> Result<OutputFormat, ParseError> {
    let f = match words.get(2).copied() {
        None => OutputFormat::Default,
        Some("json") => OutputFormat::Json,
        Some(other) => {
            return Err(ParseError::Extra {
                command: command.to_string(),
                arg: echo(other),
            })
        }
    };
    if let Some(arg) = words.get(3) {
        return Err(ParseError::Extra {
            command: command.to_string(),
            arg: echo(arg),
        });
    }
    Ok(f)
}

fn server_ref(word: Option<&&str>) -> Result<ServerRef, ParseError> {
    let word = word.ok_or(ParseError::RequireServer)?;
    match word.split_once('/') {
        Some((service, server))
            if !service.is_empty() && !server.is_empty() && !server.contains('/') =>
        {
            Ok(ServerRef {
                service: service.to_string(),
                server: server.to_string(),
            })
        }
        _ => Err(ParseError::RequireServer),
    }
}

fn weight(word: Option<&&str>) -> Result<Weight, ParseError> {
    let word = word.ok_or(ParseError::RequireWeight)?;
    let (digits, percent) = match word.strip_suffix('%') {
        Some(d) => (d, true),
        None => (*word, false),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::RequireWeight);
    }
    // All digits: a parse failure can only be overflow, i.e. out of range.
    let range = if percent {
        ParseError::PercentRange
    } else {
        ParseError::WeightRange
    };
    let n: u32 = digits.parse().map_err(|_| range.clone())?;
    if percent {
        if n > 100 {
            return Err(range);
        }
        Ok(Weight::Percent(n))
    } else {
        if n > MAX_WEIGHT {
            return Err(range);
        }
        Ok(Weight::Absolute(n))
    }
}

fn parse_vip(word: &str) -> Result<VipFilter, ParseError> {
    let bad = || ParseError::BadVip(echo(word));
    if let Ok(addr) = word.parse::<IpAddr>() {
        return Ok(VipFilter { addr, port: None });
    }
    if let Ok(sa) = word.parse::<std::net::SocketAddr>() {
        if sa.port() == 0 {
            return Err(bad());
        }
        return Ok(VipFilter {
            addr: sa.ip(),
            port: Some(sa.port()),
        });
    }
    // `[v6]` without a port.
    if let Some(inner) = word.strip_prefix('[').and_then(|w| w.strip_suffix(']')) {
        if let Ok(addr) = inner.parse::<std::net::Ipv6Addr>() {
            return Ok(VipFilter {
                addr: IpAddr::V6(addr),
                port: None,
            });
        }
    }
    Err(bad())
}

/// Frames a successful response: the body (blank lines removed, since an empty line ends
/// the response) followed by the terminating empty line.
pub fn frame_ok(body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 2);
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out
}

/// Frames an error response: one line, [`ERROR_PREFIX`] + message, then the empty line.
pub fn frame_error(message: &str) -> String {
    let one_line: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("{ERROR_PREFIX}{}\n\n", one_line.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use AdminCommand as C;

    fn srv(s: &str, v: &str) -> ServerRef {
        ServerRef {
            service: s.into(),
            server: v.into(),
        }
    }

    #[test]
    fn good_commands() {
        let cases: Vec<(&str, AdminCommand)> = vec![
            ("help", C::Help),
            ("  help  ", C::Help),
            ("quit", C::Quit),
            ("reload\r", C::Reload),
            ("show stat", C::ShowStat(OutputFormat::Default)),
            ("show stat json", C::ShowStat(OutputFormat::Json)),
            ("show info", C::ShowInfo(OutputFormat::Default)),
            ("show info json", C::ShowInfo(OutputFormat::Json)),
            ("show vrrp", C::ShowVrrp),
            ("show servers state", C::ShowServersState(None)),
            (
                "show servers state webfarm",
                C::ShowServersState(Some("webfarm".into())),
            ),
            ("show flows", C::ShowFlows(None)),
            (
                "show flows 10.0.0.1",
                C::ShowFlows(Some(VipFilter {
                    addr: "10.0.0.1".parse().unwrap(),
                    port: None,
                })),
            ),
            (
                "show flows 10.0.0.1:80",
                C::ShowFlows(Some(VipFilter {
                    addr: "10.0.0.1".parse().unwrap(),
                    port: Some(80),
                })),
            ),
            (
                "show flows [2001:db8::1]:443",
                C::ShowFlows(Some(VipFilter {
                    addr: "2001:db8::1".parse().unwrap(),
                    port: Some(443),
                })),
            ),
            (
                "show flows [2001:db8::1]",
                C::ShowFlows(Some(VipFilter {
                    addr: "2001:db8::1".parse().unwrap(),
                    port: None,
                })),
            ),
            (
                "show flows 2001:db8::1",
                C::ShowFlows(Some(VipFilter {
                    addr: "2001:db8::1".parse().unwrap(),
                    port: None,
                })),
            ),
            (
                "set server webfarm/webA state ready",
                C::SetState(srv("webfarm", "webA"), AdminState::Ready),
            ),
            (
                "set server webfarm/webA state drain",
                C::SetState(srv("webfarm", "webA"), AdminState::Drain),
            ),
            (
                "set server webfarm/webA state maint",
                C::SetState(srv("webfarm", "webA"), AdminState::Maint),
            ),
            (
                "set server webfarm/webA health up",
                C::SetHealth(srv("webfarm", "webA"), ForcedHealth::Up),
            ),
            (
                "set server webfarm/webA health stopping",
                C::SetHealth(srv("webfarm", "webA"), ForcedHealth::Stopping),
            ),
            (
                "set server webfarm/webA health down",
                C::SetHealth(srv("webfarm", "webA"), ForcedHealth::Down),
            ),
            (
                "set weight webfarm/webA 10",
                C::SetWeight(srv("webfarm", "webA"), Weight::Absolute(10)),
            ),
            (
                "set weight webfarm/webA 0",
                C::SetWeight(srv("webfarm", "webA"), Weight::Absolute(0)),
            ),
            (
                "set weight webfarm/webA 65535",
                C::SetWeight(srv("webfarm", "webA"), Weight::Absolute(65535)),
            ),
            (
                "set weight webfarm/webA 50%",
                C::SetWeight(srv("webfarm", "webA"), Weight::Percent(50)),
            ),
            (
                "set weight webfarm/webA 100%",
                C::SetWeight(srv("webfarm", "webA"), Weight::Percent(100)),
            ),
            (
                "set server webfarm/webA weight 7",
                C::SetWeight(srv("webfarm", "webA"), Weight::Absolute(7)),
            ),
            (
                "disable server webfarm/webA",
                C::DisableServer(srv("webfarm", "webA")),
            ),
            (
                "enable server webfarm/webA",
                C::EnableServer(srv("webfarm", "webA")),
            ),
            (
                "set\tweight   a/b\t1",
                C::SetWeight(srv("a", "b"), Weight::Absolute(1)),
            ),
        ];
        for (line, want) in cases {
            assert_eq!(parse(line), Ok(Some(want)), "{line:?}");
        }
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("   \t "), Ok(None));
    }

    #[test]
    fn bad_commands() {
        use ParseError as E;
        let cases: Vec<(&str, ParseError)> = vec![
            ("foo", E::Unknown("foo".into())),
            ("show", E::Unknown("show".into())),
            ("show foo bar", E::Unknown("show foo".into())),
            ("show servers", E::Unknown("show servers".into())),
            ("show servers conn", E::Unknown("show servers conn".into())),
            ("set", E::Unknown("set".into())),
            ("set maxconn x", E::Unknown("set maxconn".into())),
            ("disable frontend x", E::Unknown("disable frontend".into())),
            ("HELP", E::Unknown("HELP".into())),
            ("set server", E::RequireServer),
            ("set server webA state drain", E::RequireServer),
            ("set server /webA state drain", E::RequireServer),
            ("set server webfarm/ state drain", E::RequireServer),
            ("set server a/b/c state drain", E::RequireServer),
            ("disable server", E::RequireServer),
            ("enable server x", E::RequireServer),
            ("set weight", E::RequireServer),
            ("set server a/b state", E::BadState),
            ("set server a/b state up", E::BadState),
            ("set server a/b health", E::BadHealth),
            ("set server a/b health maint", E::BadHealth),
            ("set server a/b", E::BadSetServer),
            ("set server a/b addr 1.2.3.4", E::BadSetServer),
            ("set weight a/b", E::RequireWeight),
            ("set weight a/b x", E::RequireWeight),
            ("set weight a/b -1", E::RequireWeight),
            ("set weight a/b %", E::RequireWeight),
            ("set weight a/b 1.5", E::RequireWeight),
            ("set weight a/b 65536", E::WeightRange),
            ("set weight a/b 99999999999999999999", E::WeightRange),
            ("set weight a/b 101%", E::PercentRange),
            ("set weight a/b 99999999999999%", E::PercentRange),
            ("show flows nope", E::BadVip("nope".into())),
            ("show flows 10.0.0.1:0", E::BadVip("10.0.0.1:0".into())),
            (
                "show flows 10.0.0.1:99999",
                E::BadVip("10.0.0.1:99999".into()),
            ),
            (
                "help me",
                E::Extra {
                    command: "help".into(),
                    arg: "me".into(),
                },
            ),
            (
                "show stat csv",
                E::Extra {
                    command: "show stat".into(),
                    arg: "csv".into(),
                },
            ),
            (
                "show stat json x",
                E::Extra {
                    command: "show stat".into(),
                    arg: "x".into(),
                },
            ),
            (
                "show servers state a b",
                E::Extra {
                    command: "show servers state".into(),
                    arg: "b".into(),
                },
            ),
            (
                "set weight a/b 1 2",
                E::Extra {
                    command: "set weight".into(),
                    arg: "2".into(),
                },
            ),
            (
                "set server a/b state drain now",
                E::Extra {
                    command: "set server state".into(),
                    arg: "now".into(),
                },
            ),
            (
                "reload now",
                E::Extra {
                    command: "reload".into(),
                    arg: "now".into(),
                },
            ),
        ];
        for (line, want) in cases {
            assert_eq!(parse(line), Err(want), "{line:?}");
        }
    }

    #[test]
    fn error_messages_are_one_line() {
        assert_eq!(
            parse("foo").unwrap_err().to_string(),
            "Unknown command 'foo'. Try 'help'."
        );
        assert_eq!(
            parse("set server x state drain").unwrap_err().to_string(),
            "Require 'backend/server'."
        );
        // Control characters and long input are not echoed raw.
        let e = parse("\u{1b}[31mred").unwrap_err().to_string();
        assert!(!e.contains('\u{1b}'), "{e}");
        let long = "x".repeat(1000);
        let e = parse(&long).unwrap_err().to_string();
        assert!(e.len() < 120, "{e}");
        assert_eq!(parse_bytes(b"\xff\xfe"), Err(ParseError::NotUtf8));
        assert_eq!(
            parse_bytes(&vec![b'a'; MAX_LINE + 1]),
            Err(ParseError::TooLong)
        );
        assert_eq!(frame_error("Bad\nthing"), "ERR Bad thing\n\n");
    }

    #[test]
    fn framing() {
        assert_eq!(frame_ok(""), "\n");
        assert_eq!(frame_ok("a\n\nb\n"), "a\nb\n\n");
        assert_eq!(frame_ok("Done."), "Done.\n\n");
        assert!(HELP.lines().all(|l| !l.trim().is_empty()));
    }

    /// Arbitrary bytes never panic the parser (a cheap deterministic fuzz).
    #[test]
    fn never_panics() {
        let words: [&[u8]; 16] = [
            b"show", b"set", b"server", b"weight", b"a/b", b"state", b"health", b"%", b"/",
            b"\xff", b" ", b"\t", b"1", b"flows", b"[::1]:", b"enable",
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut line = Vec::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut y = x;
            for _ in 0..(y % 8) {
                line.extend_from_slice(words[(y >> 8) as usize % words.len()]);
                line.push(b' ');
                y = y.rotate_right(5);
            }
            let _ = parse_bytes(&line);
        }
    }
}
