//! Issue 7, acceptance 1: `lb check` rejects bad configs with a message that names the
//! file, line, column and key, and suggests the nearest valid name for a typo; risky but
//! valid settings are warnings (exit 0); exit codes are 0 valid, 1 invalid, 2 usage.
//!
//! Runs `lb check` as a subprocess, as an operator would. No privileges needed.

use anyhow::Result;
use lb_tests::daemon::{lb, ConfigFile};

/// The smallest valid head of a config.
const XDP: &str = "[xdp]\ninterface = \"eth0\"\n";

/// `[xdp]` plus an http service on 198.18.0.99:80 whose `[service.http]` body is `http`
/// and whose server table ends with `server_extra`.
fn http(http: &str, server_extra: &str) -> String {
    format!(
        "{XDP}[[service]]\nname = \"webfarm\"\nvip = \"198.18.0.99\"\nport = 80\nmode = \"http\"\n\
         [service.http]\n{http}\n\
         [[service.server]]\nname = \"webA\"\naddress = \"198.18.0.102:80\"\n{server_extra}\n\
         [[service.server]]\nname = \"webB\"\naddress = \"198.18.0.103:80\"\n"
    )
}

/// `[xdp]` plus a VRRP instance with `extra` lines before `vips`.
fn vrrp(extra: &str, vips: &str) -> String {
    format!("{XDP}[[vrrp]]\nname = \"web\"\ninterface = \"eth0\"\n{extra}\n{vips}\n")
}

/// `[xdp]` plus a service with the given body lines.
fn service(body: &str) -> String {
    format!("{XDP}[[service]]\nname = \"web\"\n{body}\n")
}

/// (case, config text, expected message substrings; `{f}` stands for the file's path).
fn cases() -> Vec<(&'static str, String, Vec<&'static str>)> {
    vec![
        (
            "toml syntax: bare word value",
            "[xdp]\ninterface = eth0\n".into(),
            vec!["{f}:2:13: string values must be quoted"],
        ),
        (
            "unknown top-level key, with suggestion",
            format!("instanse = \"a\"\n{XDP}"),
            vec![
                "{f}:1:1: unknown field `instanse`",
                "(did you mean `instance`?)",
            ],
        ),
        (
            "unknown [xdp] key, with suggestion",
            "[xdp]\ninterfase = \"eth0\"\n".into(),
            vec![
                "{f}:2:1: unknown field `interfase`",
                "(did you mean `interface`?)",
            ],
        ),
        (
            "missing [xdp]",
            "instance = \"a\"\n".into(),
            vec!["{f}:1:1: missing field `xdp`"],
        ),
        (
            "bad instance name",
            format!("instance = \"a b\"\n{XDP}"),
            vec!["{f}:1:12: instance: \"a b\" is not a valid instance name"],
        ),
        (
            "bad interface name",
            "[xdp]\ninterface = \"a/b\"\n".into(),
            vec!["{f}:2:13: xdp.interface: \"a/b\" is not a valid interface name"],
        ),
        (
            "unknown attach mode, with suggestion",
            format!("{XDP}mode = \"nativ\"\n"),
            vec![
                "{f}:3:8: xdp.mode: unknown attach mode \"nativ\"",
                "(did you mean `native`?)",
            ],
        ),
        (
            "VIP not an address",
            service("vip = \"198.18.0.300\"\nport = 80"),
            vec!["{f}:5:7: service[0].vip: \"198.18.0.300\" is not an IPv4 or IPv6 address"],
        ),
        (
            "port 0",
            service("vip = \"198.18.0.99\"\nport = 0"),
            vec!["{f}:6:8: service[0].port: 0 is not a port (1-65535)"],
        ),
        (
            "port too large",
            service("vip = \"198.18.0.99\"\nport = 70000"),
            vec!["{f}:6:8: service[0].port: 70000 is not a port"],
        ),
        (
            "port of the wrong type",
            service("vip = \"198.18.0.99\"\nport = \"80\""),
            vec!["{f}:6:8: invalid type: string \"80\", expected i64"],
        ),
        (
            "unknown protocol, with suggestion",
            service("vip = \"198.18.0.99\"\nport = 80\nprotocol = \"tcpp\""),
            vec![
                "{f}:7:12: service[0].protocol: unknown protocol \"tcpp\"",
                "(did you mean `tcp`?)",
            ],
        ),
        (
            "unknown service mode, with suggestion",
            service("vip = \"198.18.0.99\"\nport = 80\nmode = \"htpp\""),
            vec![
                "{f}:7:8: service[0].mode: unknown service mode \"htpp\"",
                "(did you mean `http`?)",
            ],
        ),
        (
            "duplicate service name",
            format!(
                "{}[[service]]\nname = \"web\"\nvip = \"198.18.0.98\"\nport = 80\n",
                service("vip = \"198.18.0.99\"\nport = 80")
            ),
            vec!["{f}:8:8: service[1].name: duplicate service name \"web\""],
        ),
        (
            "duplicate VIP",
            format!(
                "{}[[service]]\nname = \"web2\"\nvip = \"198.18.0.99\"\nport = 80\n",
                service("vip = \"198.18.0.99\"\nport = 80")
            ),
            vec!["service[1].vip: VIP 198.18.0.99:80/tcp is already used by another service"],
        ),
        (
            "http service without servers",
            service("vip = \"198.18.0.99\"\nport = 80\nmode = \"http\""),
            vec!["{f}:3:1: service[0].server: an http service needs at least one [[service.server]]"],
        ),
        (
            "unknown [service.http] key, with suggestion",
            http("forwardfr = true", ""),
            vec![
                "{f}:9:1: unknown field `forwardfr`",
                "(did you mean `forwardfor`?)",
            ],
        ),
        (
            "unknown server key, with suggestion",
            http("", "adress = \"198.18.0.1:80\""),
            vec!["{f}:13:1: unknown field `adress`", "(did you mean `address`?)"],
        ),
        (
            "http server address without port",
            http("", "").replace("198.18.0.103:80", "198.18.0.103"),
            vec!["{f}:16:11: service[0].server[1].address: \"198.18.0.103\" is not ip:port"],
        ),
        (
            "http server weight out of range",
            http("", "weight = 257"),
            vec!["{f}:13:10: service[0].server[0].weight: 257 is out of range (1-256)"],
        ),
        (
            "unknown balance algorithm",
            http("balance = \"random\"", ""),
            vec!["{f}:9:11: service[0].http.balance: unknown algorithm \"random\""],
        ),
        (
            "unknown cookie mode, with suggestion",
            http("cookie = { name = \"JSESSIONID\", mode = \"prefx\" }", ""),
            vec![
                "service[0].http.cookie.mode: unknown cookie mode \"prefx\"",
                "(did you mean `prefix`?)",
                "{f}:9:",
            ],
        ),
        (
            "insert-only cookie option with prefix",
            http(
                "cookie = { name = \"JSESSIONID\", mode = \"prefix\", nocache = true }",
                "",
            ),
            vec!["service[0].http.cookie.nocache: only valid with mode = \"insert\""],
        ),
        (
            "bad timeout unit",
            http("timeout = { connect = \"5 parsecs\" }", ""),
            vec!["{f}:9:23: service[0].http.timeout.connect: \"5 parsecs\""],
        ),
        (
            "negative retries",
            http("retries = -1", ""),
            vec!["{f}:9:11: service[0].http.retries: -1 is out of range (0-100)"],
        ),
        (
            "[service.http] on a pass service",
            service("vip = \"198.18.0.99\"\nport = 80\n[service.http]\nretries = 1"),
            vec!["service[0].http: [service.http] is only for mode = \"http\""],
        ),
        (
            "L4 server with a port",
            service(
                "vip = \"198.18.0.99\"\nport = 80\nmode = \"dsr\"\n\
                 [[service.server]]\nname = \"a\"\naddress = \"198.18.0.102:80\"",
            ),
            vec!["{f}:10:11: service[0].server[0].address: \"198.18.0.102:80\" is not an IP address (L4 servers take no port)"],
        ),
        (
            "ipip without an outer source",
            service(
                "vip = \"198.18.0.99\"\nport = 80\nmode = \"ipip\"\n\
                 [[service.server]]\nname = \"a\"\naddress = \"198.18.0.102\"",
            ),
            vec!["service[0].mode: mode ipip needs l4.ipip_source_v4"],
        ),
        (
            "Maglev table size not prime",
            service(
                "vip = \"198.18.0.99\"\nport = 80\nmode = \"dsr\"\ntable_size = 1000\n\
                 [[service.server]]\nname = \"a\"\naddress = \"198.18.0.102\"",
            ),
            vec!["{f}:8:14: service[0].table_size:"],
        ),
        (
            "conntrack too small",
            format!("{XDP}[l4]\nconntrack_size = 10\n"),
            vec!["{f}:4:18: l4.conntrack_size: 10 is out of range 1024..=16777216"],
        ),
        (
            "VRID 0",
            vrrp("vrid = 0", "vips = [\"198.18.0.99/24\"]"),
            vec!["{f}:6:8: vrrp[0].vrid: 0 is not a virtual router id (1-255)"],
        ),
        (
            "VRRP priority 256",
            vrrp("vrid = 51\npriority = 256", "vips = [\"198.18.0.99/24\"]"),
            vec!["{f}:7:12: vrrp[0].priority: 256 is not a priority"],
        ),
        (
            "advert interval not in centiseconds",
            vrrp(
                "vrid = 51\nadvert_interval = \"15ms\"",
                "vips = [\"198.18.0.99/24\"]",
            ),
            vec!["{f}:7:19: vrrp[0].advert_interval: \"15ms\": the advert interval is sent in centiseconds"],
        ),
        (
            "VRRP without vips",
            vrrp("vrid = 51", ""),
            vec!["{f}:3:1: missing field `vips`"],
        ),
        (
            "VRRP VIP with a bad prefix",
            vrrp("vrid = 51", "vips = [\"198.18.0.99/33\"]"),
            vec!["{f}:7:9: vrrp[0].vips: \"198.18.0.99/33\" is not an address with prefix length"],
        ),
        (
            "unknown VRRP key, with suggestion",
            vrrp("vrid = 51\npreemt = false", "vips = [\"198.18.0.99/24\"]"),
            vec!["{f}:7:1: unknown field `preemt`", "(did you mean `preempt`?)"],
        ),
        (
            "[global] user that is not a user name",
            format!("{XDP}[global]\nuser = \"root:root\"\n"),
            vec!["{f}:4:8: global.user: \"root:root\" is not a user or group name or number"],
        ),
        (
            "[global] group without user",
            format!("{XDP}[global]\ngroup = \"lb\"\n"),
            vec!["{f}:4:9: global.group: `group` needs `user` too"],
        ),
    ]
}

#[test]
fn bad_configs_are_rejected_with_file_line_column_and_key() -> Result<()> {
    let cases = cases();
    assert!(cases.len() >= 20, "acceptance asks for at least 20 cases");
    let mut failures = Vec::new();
    for (name, text, wants) in &cases {
        let cfg = ConfigFile::new(text)?;
        let path = cfg.path().to_str().expect("utf-8 temp path");
        let (status, out, err) = lb(&["check", "--config", path])?;
        println!("[{name}] exit {:?}: {}", status.code(), err.trim());
        if status.code() != Some(1) {
            failures.push(format!(
                "[{name}] exit {:?}, want 1\nstdout: {out}\nstderr: {err}",
                status.code()
            ));
            continue;
        }
        for want in wants {
            let want = want.replace("{f}", path);
            if !err.contains(&want) {
                failures.push(format!("[{name}] expected {want:?} in:\n{err}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
    Ok(())
}

#[test]
fn risky_settings_warn_but_pass() -> Result<()> {
    let text = format!(
        "[xdp]\ninterface = \"eth0\"\nmode = \"generic\"\n\
         [[service]]\nname = \"solo\"\nvip = \"198.18.0.99\"\nport = 80\nmode = \"http\"\n\
         [service.http]\nretries = 0\nredispatch = true\n\
         [[service.server]]\nname = \"a\"\naddress = \"198.18.0.102:80\"\n\
         {}",
        "[[vrrp]]\nname = \"v\"\ninterface = \"lb-no-such-if0\"\nvrid = 51\npriority = 255\nvips = [\"198.18.0.99/24\"]\n"
    );
    let cfg = ConfigFile::new(&text)?;
    let path = cfg.path().to_str().expect("utf-8 temp path");
    let (status, out, err) = lb(&["check", "--config", path])?;
    println!("exit {:?}\nstdout: {out}\nstderr: {err}", status.code());
    assert_eq!(status.code(), Some(0), "warnings never fail the check");
    assert!(out.contains(&format!("{path}: OK (1 service")), "{out}");
    for want in [
        "xdp.mode: generic XDP runs in the kernel's slow path",
        "service[0].http.redispatch: service \"solo\": redispatch only acts on a retry",
        "service[0].server: service \"solo\" has a single server",
        "vrrp[0].priority: instance \"v\": priority 255 claims address ownership",
    ] {
        let want = format!("lb: warning: {path}: {want}");
        assert!(err.contains(&want), "expected {want:?} in:\n{err}");
    }
    Ok(())
}

#[test]
fn a_good_config_has_no_warnings() -> Result<()> {
    let cfg = ConfigFile::new(&http("retries = 3\nredispatch = true", ""))?;
    let (status, out, err) = lb(&["check", "--config", cfg.path().to_str().expect("utf-8")])?;
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(out.contains("OK (1 service, interface eth0)"), "{out}");
    assert!(!err.contains("warning"), "{err}");
    Ok(())
}

#[test]
fn exit_codes() -> Result<()> {
    let (status, _, err) = lb(&["check", "--config", "/nonexistent/lb.toml"])?;
    assert_eq!(status.code(), Some(1), "unreadable file: {err}");
    assert!(
        err.contains("cannot read config file /nonexistent/lb.toml"),
        "{err}"
    );
    let (status, _, err) = lb(&["check"])?;
    assert_eq!(
        status.code(),
        Some(2),
        "missing --config is a usage error: {err}"
    );
    let (status, _, err) = lb(&["check", "--config", "a.toml", "--bogus"])?;
    assert_eq!(
        status.code(),
        Some(2),
        "unknown flag is a usage error: {err}"
    );
    Ok(())
}
