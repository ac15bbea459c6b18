//! Issue 8, acceptance 3: the Debian package builds (`cargo xtask deb`), installs with
//! `dpkg -i`, and what it installs works:
//!
//! - `lb --version` prints the workspace version;
//! - `lb check` passes on the packaged `/etc/lb/lb.toml` (a conffile), as shipped and with
//!   every commented example (`#key = value` lines) uncommented;
//! - `systemd-analyze verify` says nothing about the unit;
//! - the man pages (one per visible subcommand of the real clap tree) and docs are there;
//! - the installed binary, started the way the unit starts it (its `ExecStart=` under
//!   exactly its `CapabilityBoundingSet=`, no new privileges) in a namespace, becomes VRRP
//!   master, attaches XDP (so the package embeds the real XDP object), answers HTTP on
//!   port 80 and on its admin socket, and stops cleanly on SIGTERM; without any one of the
//!   required capabilities it refuses to start. The same with `[global] user = "nobody"`:
//!   it switches to that user, and cannot without the unit's CAP_SETUID, CAP_SETGID or
//!   CAP_SETPCAP (without CAP_CHOWN it warns that it cannot hand over its directories).
//!
//! The package is removed with `dpkg --purge` at the end, also when the test fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::CommandFactory;
use lb_tests::daemon::{ConfigFile, Instance, OutputLog};
use lb_tests::netns::{run_bounded, NsProcess, Topology};
use lb_tests::procfs::process_creds;
use lb_tests::require;

/// The package name (`[package.metadata.deb] name`).
const PACKAGE: &str = "lb";
/// Where the package puts the unit (`/lib` is `/usr/lib` on Debian 12).
const UNIT: &str = "/lib/systemd/system/lb.service";
/// The packaged config the unit runs.
const CONFIG: &str = "/etc/lb/lb.toml";
/// The capability the unit grants that `lb run` can do without (VRRP thread priority).
const OPTIONAL_CAP: &str = "CAP_SYS_NICE";
/// The capabilities the unit grants for `[global] user` only: the switch to the user
/// (the last one, handing it the pin and status directories, only warns when missing).
const USER_SWITCH_CAPS: [&str; 4] = ["CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_CHOWN"];
/// The user `[global] user` switches to in the test.
const NOBODY: &str = "nobody";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `program args`, bounded; returns (success, stdout, stderr).
fn run(program: &str, args: &[&str], timeout: Duration) -> Result<(bool, String, String)> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    let out = run_bounded(cmd, timeout).with_context(|| format!("running {program} {args:?}"))?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// The installed package; purged on drop, whatever happened.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let out = Command::new("dpkg").args(["--purge", PACKAGE]).output();
        if !matches!(&out, Ok(o) if o.status.success()) {
            eprintln!("dpkg --purge {PACKAGE} failed: {out:?}");
        }
    }
}

fn installed_version() -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Status} ${Version}", PACKAGE])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.starts_with("install ok installed").then_some(text)
}

/// `cargo xtask deb --fast`; returns the .deb's path (the last line it prints).
fn build_deb() -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let started = Instant::now();
    let mut cmd = Command::new(&cargo);
    cmd.args(["xtask", "deb", "--fast"])
        .current_dir(repo_root());
    let out = run_bounded(cmd, Duration::from_secs(1200)).context("cargo xtask deb")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "cargo xtask deb failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deb = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    ensure!(
        deb.extension().is_some_and(|e| e == "deb") && deb.is_file(),
        "no .deb from cargo xtask deb:\n{stdout}"
    );
    println!(
        "cargo xtask deb took {:?}: {}",
        started.elapsed(),
        deb.display()
    );
    Ok(deb)
}

/// The value of `key=` in the unit's `[Service]` section (first occurrence).
fn unit_value(unit: &str, key: &str) -> Result<String> {
    unit.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_string)
        .with_context(|| format!("{UNIT} has no {key}="))
}

/// The uncommented form of the packaged config: every `#key = value`, `#[table]` line
/// (a `#` directly followed by something other than a space or `#`) loses its `#`.
fn uncomment(config: &str) -> String {
    config
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if !rest.is_empty() && !rest.starts_with([' ', '#', '!']) => rest,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A running `/usr/sbin/lb run` under `setpriv`, its output collected.
struct Started {
    proc: NsProcess,
    log: OutputLog,
}

impl Started {
    fn log(&self) -> String {
        self.log.text()
    }
}

/// Starts the unit's `ExecStart=` (with `config` instead of /etc/lb/lb.toml) in `ns` as
/// root with exactly `caps` as the bounding set, the way systemd starts it.
fn start_as_unit(
    topo: &Topology,
    exec_start: &[String],
    caps: &[String],
    config: &Path,
) -> Result<Started> {
    let bounding = std::iter::once("-all".to_string())
        .chain(
            caps.iter()
                .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_ascii_lowercase())),
        )
        .collect::<Vec<_>>()
        .join(",");
    let mut cmd = topo.host(1).ns().command_net_only("setpriv")?;
    cmd.arg(format!("--bounding-set={bounding}"))
        .args(["--inh-caps=-all", "--no-new-privs", "--"]);
    for a in exec_start {
        if a == CONFIG {
            cmd.arg(config);
        } else {
            cmd.arg(a);
        }
    }
    cmd.env("LB_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut proc = NsProcess::spawn(cmd)?;
    let log = OutputLog::collect(&mut proc);
    Ok(Started { proc, log })
}

/// The config the installed binary runs in the namespace: an HTTP VIP on port 80, a `dsr`
/// VIP and a VRRP instance, i.e. every capability's use.
fn namespace_config(inst: &Instance, topo: &Topology) -> String {
    let client = topo.host(0).ipv4();
    let o = topo.host(1).ipv4().octets();
    let vip = format!("{}.{}.{}.100", o[0], o[1], o[2]);
    format!(
        r#"instance = "{inst}"
[xdp]
interface = "eth0"
[[service]]
name = "web"
vip = "{vip}"
port = 80
mode = "http"
[[service.server]]
name = "a"
address = "{client}:9"
check = true
inter = "200ms"
[[service]]
name = "l4"
vip = "{vip}"
port = 8080
mode = "dsr"
[[service.server]]
name = "b"
address = "{client}"
[[vrrp]]
name = "v"
interface = "eth0"
vrid = 51
priority = 150
advert_interval = "100ms"
vips = ["{vip}/24"]
"#,
        inst = inst.name()
    )
}

/// The installed binary under the unit's capabilities: serves, also as `[global] user`;
/// without a required capability: refuses to start.
fn check_unit_capabilities(unit: &str) -> Result<()> {
    let caps: Vec<String> = unit_value(unit, "CapabilityBoundingSet")?
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let exec_start: Vec<String> = unit_value(unit, "ExecStart")?
        .split_whitespace()
        .map(str::to_string)
        .collect();
    ensure!(
        exec_start.first().map(String::as_str) == Some("/usr/sbin/lb")
            && exec_start.iter().any(|a| a == CONFIG),
        "ExecStart runs /usr/sbin/lb with {CONFIG}: {exec_start:?}"
    );
    let topo = Topology::builder("pkg").hosts(2).subnet(81).build()?;
    let inst = Instance::new("pkg");
    let config = ConfigFile::new(&namespace_config(&inst, &topo))?;
    let vip = {
        let o = topo.host(1).ipv4().octets();
        format!("{}.{}.{}.100", o[0], o[1], o[2])
    };

    // With the unit's set: master, attached, serving.
    serve_and_stop(&topo, &inst, &exec_start, &caps, config.path(), &vip)?;
    println!("under {caps:?}: MASTER, XDP attached, HTTP 503 from the VIP, admin socket, exit 0");

    // Each required capability is needed.
    let required = caps
        .iter()
        .filter(|c| *c != OPTIONAL_CAP && !USER_SWITCH_CAPS.contains(&c.as_str()));
    for drop in required {
        let fewer: Vec<String> = caps.iter().filter(|c| *c != drop).cloned().collect();
        let (ok, log) = run_to_exit(&topo, &exec_start, &fewer, config.path(), drop)?;
        ensure!(
            !ok && !log.contains("XDP attached"),
            "started without {drop}:\n{log}"
        );
        let why = log.lines().rfind(|l| l.starts_with("lb: ")).unwrap_or("");
        println!(
            "without {drop}: {}",
            why.chars().take(140).collect::<String>()
        );
    }

    // With `[global] user`: the switch works under the unit's set, and needs its
    // capabilities.
    for cap in USER_SWITCH_CAPS {
        ensure!(caps.iter().any(|c| c == cap), "the unit lacks {cap}");
    }
    let as_user = namespace_config(&inst, &topo).replacen(
        "[xdp]",
        &format!("[global]\nuser = \"{NOBODY}\"\n[xdp]"),
        1,
    );
    let user_config = ConfigFile::new(&as_user)?;
    let log = serve_and_stop(&topo, &inst, &exec_start, &caps, user_config.path(), &vip)?;
    ensure!(log.contains("privileges dropped"), "{log}");
    println!(
        "[global] user = {NOBODY:?} under the unit's set: privileges dropped, serving, exit 0"
    );
    for drop in USER_SWITCH_CAPS {
        let fewer: Vec<String> = caps.iter().filter(|c| *c != drop).cloned().collect();
        if drop == "CAP_CHOWN" {
            let log = serve_and_stop(&topo, &inst, &exec_start, &fewer, user_config.path(), &vip)?;
            ensure!(
                log.contains("cannot hand the directory to [global] user"),
                "no warning without {drop}:\n{log}"
            );
            println!("[global] user without {drop}: serves, warns that it cannot hand over the pin directory");
            continue;
        }
        let (ok, log) = run_to_exit(&topo, &exec_start, &fewer, user_config.path(), drop)?;
        ensure!(!ok, "[global] user worked without {drop}:\n{log}");
        let why = log.lines().rfind(|l| l.starts_with("lb: ")).unwrap_or("");
        println!(
            "[global] user without {drop}: {}",
            why.chars().take(140).collect::<String>()
        );
    }
    Ok(())
}

/// Starts the unit's command under `caps`, waits until it is MASTER with XDP attached,
/// checks HTTP on the VIP (503: the only server refuses) and the admin socket, checks the
/// process runs as the config's `[global] user` when there is one, then stops it with
/// SIGTERM (exit 0). Returns its log.
fn serve_and_stop(
    topo: &Topology,
    inst: &Instance,
    exec_start: &[String],
    caps: &[String],
    config: &Path,
    vip: &str,
) -> Result<String> {
    let mut lb = start_as_unit(topo, exec_start, caps, config)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lb.log().contains("XDP attached") {
        if let Some(st) = lb.proc.try_wait()? {
            bail!("lb run under {caps:?} exited ({st}):\n{}", lb.log());
        }
        ensure!(
            Instant::now() < deadline,
            "not attached in 20 s:\n{}",
            lb.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    ensure!(lb.log().contains("MASTER"), "{}", lb.log());
    let code = topo.host(0).ns().exec_stdout(&[
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "--max-time",
        "10",
        "-w",
        "%{http_code}",
        &format!("http://{vip}/"),
    ])?;
    ensure!(
        code == "503",
        "HTTP status from the VIP: {code}\n{}",
        lb.log()
    );
    let socket = format!("/run/lb/{}.sock", inst.name());
    let (ok, stat, err) = run(
        "/usr/sbin/lb",
        &["show", "stat", "--socket", &socket],
        Duration::from_secs(10),
    )?;
    ensure!(ok && stat.contains("web,"), "lb show stat: {stat}{err}");
    if std::fs::read_to_string(config)?.contains("[global]") {
        let uids = process_creds(lb.proc.pid())?.uids;
        ensure!(
            uids.contains(&65534),
            "not running as {NOBODY}: Uid {uids:?}"
        );
    }
    lb.proc.kill_with(libc::SIGTERM)?;
    let status = lb
        .proc
        .wait_timeout(Duration::from_secs(15))?
        .with_context(|| format!("no exit within 15 s of SIGTERM:\n{}", lb.log()))?;
    std::thread::sleep(Duration::from_millis(100));
    ensure!(
        status.success(),
        "exit after SIGTERM: {status}\n{}",
        lb.log()
    );
    Ok(lb.log())
}

/// Starts the unit's command under `caps` and waits (20 s at most) for it to exit, as it
/// must without `missing`; returns whether it exited 0, and its log.
fn run_to_exit(
    topo: &Topology,
    exec_start: &[String],
    caps: &[String],
    config: &Path,
    missing: &str,
) -> Result<(bool, String)> {
    let mut lb = start_as_unit(topo, exec_start, caps, config)?;
    let status = lb
        .proc
        .wait_timeout(Duration::from_secs(20))?
        .with_context(|| format!("still running without {missing}:\n{}", lb.log()))?;
    std::thread::sleep(Duration::from_millis(100));
    Ok((status.success(), lb.log()))
}

#[test]
fn deb_builds_installs_and_runs_as_the_unit_says() -> Result<()> {
    if !require::privileged("deb_builds_installs_and_runs_as_the_unit_says") {
        return Ok(());
    }
    for program in ["dpkg", "systemd-analyze", "setpriv", "curl"] {
        if !require::program(program) {
            return Ok(());
        }
    }
    if let Some(v) = installed_version() {
        bail!("package {PACKAGE} is already installed ({v}); this test installs and purges it: remove it first (dpkg --purge {PACKAGE})");
    }
    let deb = build_deb()?;

    let (ok, out, err) = run(
        "dpkg",
        &["-i", deb.to_str().context("utf-8 path")?],
        Duration::from_secs(120),
    )?;
    let _installed = Installed;
    ensure!(ok, "dpkg -i failed:\n{out}{err}");
    println!("dpkg -i {}: ok", deb.display());

    // The upgrade path (postinst configure with the old version) runs cleanly, and no
    // maintainer script restarts or stops a running lb on upgrade: the operator picks the
    // restart (docs/operations.md).
    let (ok, out, err) = run(
        "dpkg",
        &["-i", deb.to_str().context("utf-8 path")?],
        Duration::from_secs(120),
    )?;
    ensure!(ok, "dpkg -i over the installed package failed:\n{out}{err}");
    let control = tempfile::tempdir()?;
    let dir = control.path().to_str().context("utf-8 path")?;
    let (ok, _, err) = run(
        "dpkg-deb",
        &["-e", deb.to_str().context("utf-8 path")?, dir],
        Duration::from_secs(30),
    )?;
    ensure!(ok, "dpkg-deb -e: {err}");
    for script in ["postinst", "prerm", "postrm"] {
        let text = std::fs::read_to_string(control.path().join(script)).unwrap_or_default();
        ensure!(
            !text.contains("restart lb.service") && !text.contains("start lb.service"),
            "{script} starts or restarts lb:\n{text}"
        );
    }
    let prerm = std::fs::read_to_string(control.path().join("prerm"))?;
    ensure!(
        prerm
            .lines()
            .filter(|l| l.contains("stop lb.service"))
            .count()
            == 1
            && prerm.contains("\"$1\" = remove"),
        "prerm stops lb only on removal:\n{prerm}"
    );
    println!("dpkg -i again (upgrade path): ok; no maintainer script restarts lb");

    // lb --version.
    let (ok, version, _) = run("/usr/sbin/lb", &["--version"], Duration::from_secs(10))?;
    ensure!(ok, "lb --version failed");
    assert_eq!(version.trim(), format!("lb {}", env!("CARGO_PKG_VERSION")));
    println!("{}", version.trim());

    // The default config: a conffile that passes lb check, also with every example on.
    let (_, conffiles, _) = run(
        "dpkg-query",
        &["-W", "-f=${Conffiles}", PACKAGE],
        Duration::from_secs(10),
    )?;
    ensure!(
        conffiles.contains(CONFIG),
        "{CONFIG} is no conffile: {conffiles}"
    );
    let (ok, out, err) = run(
        "/usr/sbin/lb",
        &["check", "--config", CONFIG],
        Duration::from_secs(10),
    )?;
    ensure!(ok, "lb check --config {CONFIG}:\n{out}{err}");
    println!("{}", out.trim());
    let examples = ConfigFile::new(&uncomment(&std::fs::read_to_string(CONFIG)?))?;
    let path = examples.path().to_str().context("utf-8 path")?;
    let (ok, out, err) = run(
        "/usr/sbin/lb",
        &["check", "--config", path],
        Duration::from_secs(10),
    )?;
    ensure!(
        ok,
        "the packaged config with its examples uncommented:\n{out}{err}"
    );
    ensure!(out.contains("OK (2 services"), "{out}");
    println!("examples uncommented: {}", out.trim());

    // The unit: systemd-analyze has nothing to say about it.
    let (ok, out, err) = run(
        "systemd-analyze",
        &["verify", "--man=no", UNIT],
        Duration::from_secs(60),
    )?;
    let about_ours: Vec<&str> = err
        .lines()
        .chain(out.lines())
        .filter(|l| l.contains("lb.service"))
        .collect();
    ensure!(
        ok && about_ours.is_empty(),
        "systemd-analyze verify {UNIT}:\n{out}{err}"
    );
    println!("systemd-analyze verify --man=no {UNIT}: ok, no warnings");

    // Man pages for lb and every visible subcommand; docs.
    let cli = lb::cli::Cli::command();
    let mut pages = vec!["lb".to_string()];
    pages.extend(
        cli.get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| format!("lb-{}", s.get_name())),
    );
    for page in &pages {
        let path = format!("/usr/share/man/man8/{page}.8.gz");
        let (ok, text, err) = run("zcat", &[&path], Duration::from_secs(10))?;
        ensure!(ok, "{path}: {err}");
        ensure!(text.contains(".TH"), "{path} is no man page");
    }
    let (_, main_page, _) = run(
        "zcat",
        &["/usr/share/man/man8/lb.8.gz"],
        Duration::from_secs(10),
    )?;
    // roff writes the hyphen of `lb-run` as `lb\-run`.
    let main_page = main_page.replace("\\-", "-");
    for page in &pages[1..] {
        ensure!(
            main_page.contains(&format!("{page}(8)")),
            "lb(8) does not list {page}"
        );
    }
    println!("man pages: {}", pages.join(", "));
    for doc in [
        "README.md",
        "architecture.md",
        "config.md",
        "operations.md",
        "troubleshooting.md",
        "performance.md",
    ] {
        let path = Path::new("/usr/share/doc/lb").join(doc);
        ensure!(path.is_file(), "{} missing", path.display());
    }

    // The unit's ExecStart under its capabilities, in a namespace.
    check_unit_capabilities(&std::fs::read_to_string(UNIT)?)?;

    drop(_installed);
    ensure!(
        installed_version().is_none() && !Path::new("/usr/sbin/lb").exists(),
        "dpkg --purge left the package behind"
    );
    Ok(())
}
