//! Issue 7, acceptance 2 (the config part): the seed's haproxy.cfg and wackamole.conf,
//! exactly as the tutorial gives them, import with their addresses mapped to 198.18.0.x
//! (lb1 .100, lb2 .101, http1 .102, http2 .103, VIP .99) into a config `lb check`
//! accepts, with the seed's service, servers, cookie persistence and X-Forwarded-For;
//! every line that was not translated is listed with its line number.
//!
//! Also: keepalived.conf import, usage errors, and every command in docs/migrating.md.
//! Runs `lb` as a subprocess; no privileges needed.

use anyhow::{ensure, Context, Result};
use lb_tests::daemon::{lb, ConfigFile};
use std::path::{Path, PathBuf};

/// The seed mapping, as the seeds' README prescribes.
const MAP: [&str; 5] = [
    "192.168.0.99=198.18.0.99",
    "192.168.0.100=198.18.0.100",
    "192.168.0.101=198.18.0.101",
    "192.168.0.102=198.18.0.102",
    "192.168.0.103=198.18.0.103",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The in-repo copy of a seed file; checked against `../shared/seeds/` when that exists,
/// so the test really runs the tutorial's files exactly as written.
fn seed(name: &str) -> Result<PathBuf> {
    let copy = root().join("lb-userspace/src/import/testdata").join(name);
    let original = root().join("../shared/seeds").join(name);
    if original.is_file() {
        ensure!(
            std::fs::read(&copy)? == std::fs::read(&original)?,
            "{} differs from {}",
            copy.display(),
            original.display()
        );
    }
    Ok(copy)
}

fn import(args: &[&str]) -> Result<(i32, String, String)> {
    let mut all = vec!["import"];
    all.extend_from_slice(args);
    let (status, out, err) = lb(&all)?;
    Ok((status.code().unwrap_or(-1), out, err))
}

fn seed_import() -> Result<(i32, String, String)> {
    let hap = seed("haproxy.cfg")?;
    let wack = seed("wackamole.conf")?;
    let mut args = vec![
        hap.to_str().context("utf-8")?,
        "--wackamole",
        wack.to_str().context("utf-8")?,
        "--interface",
        "lb0",
    ];
    for m in &MAP {
        args.push("--map");
        args.push(m);
    }
    import(&args)
}

#[test]
fn seed_imports_and_passes_check() -> Result<()> {
    let (code, toml, notes) = seed_import()?;
    println!("exit {code}\n--- stdout\n{toml}--- stderr\n{notes}");
    assert_eq!(code, 0, "{notes}");
    assert!(!toml.contains("192.168.0."), "unmapped address in:\n{toml}");

    // The config is the seed's, key by key.
    let cfg = lb::config::parse(Path::new("imported.toml"), &toml)?;
    assert_eq!(cfg.xdp.interface, "lb0");
    assert_eq!(cfg.services.len(), 1);
    let svc = &cfg.services[0];
    assert_eq!(svc.name, "webfarm");
    assert_eq!(svc.vip.to_string(), "198.18.0.99:80/tcp");
    let http = svc.http.as_ref().context("an http service")?;
    assert!(http.forwardfor && http.httpclose && http.redispatch);
    assert_eq!((http.retries, http.maxconn), (3, 2000));
    let cookie = http.cookie.as_ref().context("cookie persistence")?;
    assert_eq!(cookie.name, "JSESSIONID");
    assert_eq!(
        cookie.mode,
        lb::l7::service::CookieMode::Prefix,
        "cookie JSESSIONID prefix"
    );
    let servers: Vec<(String, String, Option<String>)> = http
        .servers
        .iter()
        .map(|s| (s.name.clone(), s.addr.to_string(), s.cookie.clone()))
        .collect();
    assert_eq!(
        servers,
        [
            ("webA".into(), "198.18.0.102:80".into(), Some("A".into())),
            ("webB".into(), "198.18.0.103:80".into(), Some("B".into())),
        ]
    );
    // The seed's health checks: HEAD /check.txt on both servers.
    let svc = &cfg.services[0];
    assert!(
        svc.health.servers.iter().all(|c| c.enabled),
        "both servers checked"
    );
    assert!(
        toml.contains("httpchk = \"HEAD /check.txt HTTP/1.0\""),
        "{toml}"
    );
    assert_eq!(http.timeouts.connect, std::time::Duration::from_secs(5));
    assert_eq!(http.timeouts.client, std::time::Duration::from_secs(50));
    assert_eq!(http.timeouts.server, std::time::Duration::from_secs(50));
    assert_eq!(cfg.vrrp.len(), 1);
    let v = &cfg.vrrp[0];
    assert_eq!(
        (v.interface.as_str(), v.vrid, v.preempt),
        ("lb0", 51, false)
    );
    assert_eq!(v.vips[0].to_string(), "198.18.0.99/24");

    // `lb check` accepts it as a file, without warnings.
    let file = ConfigFile::new(&toml)?;
    let path = file.path().to_str().context("utf-8")?;
    let (status, out, err) = lb(&["check", "--config", path])?;
    println!("lb check: {out}{err}");
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(out.contains("OK (1 service, interface lb0)"), "{out}");
    assert!(!err.contains("warning"), "{err}");

    // The seed's stats lines: the page at HAProxy's default uri, the seed's user.
    let stats = http.stats.as_ref().context("stats page enabled")?;
    assert_eq!(stats.uri, "/haproxy?stats");
    assert_eq!(
        (
            stats.users[0].name.as_str(),
            stats.users[0].password.as_str()
        ),
        ("someuser", "somepassword")
    );

    // Translated lines are not listed as untranslated.
    for l in [
        "haproxy.cfg:25:",
        "haproxy.cfg:26:",
        "haproxy.cfg:31:",
        "haproxy.cfg:32:",
        "haproxy.cfg:33:",
    ] {
        assert!(!notes.contains(l), "{l} is translated now:\n{notes}");
    }

    // Nothing dropped silently: each untranslated seed line is listed with its number.
    for want in [
        "haproxy.cfg:2: not translated: `log 127.0.0.1 local0`",
        "haproxy.cfg:5: not translated: `maxconn 4096`",
        "haproxy.cfg:8: not translated: `user haproxy`",
        "haproxy.cfg:9: not translated: `group haproxy`",
        "haproxy.cfg:12: not translated: `log global`",
        "haproxy.cfg:14: not needed: `option httplog`",
        "haproxy.cfg:15: not translated: `option dontlognull`",
        "wackamole.conf:1: not needed: `Spread = 4803`",
        "wackamole.conf:6: check: `Prefer None`",
        "wackamole.conf:12: not needed: `Arp-Cache = 60s`",
        "wackamole.conf:14: not needed: `Notify {`",
        "wackamole.conf:19: not needed: `balance {`",
        "wackamole.conf:23: not needed: `mature = 5s`",
    ] {
        assert!(notes.contains(want), "expected {want:?} in:\n{notes}");
    }
    Ok(())
}

const KEEPALIVED: &str = "\
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 42
    priority 150
    advert_int 1
    nopreempt
    authentication {
        auth_type PASS
        auth_pass secret
    }
    unicast_peer {
        192.168.0.101
    }
    virtual_ipaddress {
        192.168.0.99/24
    }
}
";

#[test]
fn keepalived_imports_and_passes_check() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let k = dir.path().join("keepalived.conf");
    std::fs::write(&k, KEEPALIVED)?;
    let hap = seed("haproxy.cfg")?;
    let mut args = vec![
        hap.to_str().context("utf-8")?,
        "--keepalived",
        k.to_str().context("utf-8")?,
    ];
    for m in &MAP {
        args.push("--map");
        args.push(m);
    }
    let (code, toml, notes) = import(&args)?;
    println!("exit {code}\n--- stdout\n{toml}--- stderr\n{notes}");
    assert_eq!(code, 0, "{notes}");
    let cfg = lb::config::parse(Path::new("imported.toml"), &toml)?;
    assert_eq!(cfg.xdp.interface, "eth0", "the instance's interface");
    let v = &cfg.vrrp[0];
    assert_eq!(
        (v.name.as_str(), v.vrid, v.priority, v.preempt),
        ("VI_1", 42, 150, false)
    );
    assert_eq!(
        v.unicast_peers,
        ["198.18.0.101".parse::<std::net::IpAddr>()?]
    );
    assert!(
        notes.contains("keepalived.conf:2: not needed: `state MASTER`"),
        "{notes}"
    );
    assert!(
        notes.contains("keepalived.conf:8: not translated: `authentication {`"),
        "{notes}"
    );
    Ok(())
}

#[test]
fn usage_and_input_errors() -> Result<()> {
    let hap = seed("haproxy.cfg")?;
    let hap = hap.to_str().context("utf-8")?;
    let (code, _, err) = import(&[hap, "--map", "192.168.0.99"])?;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--map \"192.168.0.99\": expected FROM=TO"),
        "{err}"
    );
    let (code, _, err) = import(&[hap, "--interface", "a/b"])?;
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = import(&[])?;
    assert_eq!(code, 2, "the haproxy.cfg argument is required: {err}");
    let (code, _, err) = import(&["/nonexistent/haproxy.cfg"])?;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("cannot read /nonexistent/haproxy.cfg"),
        "{err}"
    );

    // A listen section with no address and no VRRP VIP cannot become a service: listed,
    // and the result still passes `lb check`.
    let dir = tempfile::tempdir()?;
    let f = dir.path().join("h.cfg");
    std::fs::write(
        &f,
        "listen web *:80\n  mode http\n  server a 198.18.0.102:80\n  acl x path /\n",
    )?;
    let (code, toml, err) = import(&[f.to_str().context("utf-8")?])?;
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("h.cfg:1: not translated: `listen web *:80`: a wildcard bind"),
        "{err}"
    );
    assert!(
        err.contains("h.cfg:4: not translated: `acl x path /`"),
        "{err}"
    );
    assert!(!toml.contains("[[service]]"), "{toml}");
    Ok(())
}

/// Every `$ lb ...` command in docs/migrating.md, run as written in a directory holding
/// the seed files (as haproxy.cfg, wackamole.conf) and the keepalived.conf above, with
/// 192.168.0.x already rewritten to 198.18.0.x so no generated config names 192.168.0.x.
#[test]
fn migrating_doc_commands_run() -> Result<()> {
    let doc = std::fs::read_to_string(root().join("docs/migrating.md"))?;
    let dir = tempfile::tempdir()?;
    let lab = |text: String| text.replace("192.168.0.", "198.18.0.");
    for name in ["haproxy.cfg", "wackamole.conf"] {
        std::fs::write(
            dir.path().join(name),
            lab(std::fs::read_to_string(seed(name)?)?),
        )?;
    }
    std::fs::write(
        dir.path().join("keepalived.conf"),
        lab(KEEPALIVED.to_string()),
    )?;
    let mut ran = 0;
    for line in doc.lines() {
        let Some(cmd) = line.trim().strip_prefix("$ lb ") else {
            continue;
        };
        let (cmd, redirect) = match cmd.split_once(" > ") {
            Some((c, f)) => (c, Some(f.trim())),
            None => (cmd, None),
        };
        let args: Vec<&str> = cmd.split_whitespace().filter(|a| *a != "\\").collect();
        let out = std::process::Command::new(lb_tests::require::lb_bin())
            .args(&args)
            .current_dir(dir.path())
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!("$ lb {cmd}\n{stderr}");
        ensure!(out.status.success(), "`lb {cmd}` failed: {stderr}");
        if let Some(f) = redirect {
            let toml = String::from_utf8_lossy(&out.stdout);
            ensure!(!toml.contains("192.168.0."), "{toml}");
            std::fs::write(dir.path().join(f), &out.stdout)?;
        }
        ran += 1;
    }
    ensure!(
        ran >= 3,
        "docs/migrating.md shows {ran} commands; expected at least 3"
    );
    Ok(())
}
