//! Foundation acceptance 5: every way `lb run` can fail to start gets a message that says
//! what is wrong and what to do.

use anyhow::Result;
use lb_tests::{
    daemon::{lb, ConfigFile, Instance},
    netns::Netns,
    require,
};
use std::{os::unix::fs::PermissionsExt, process::Command};

fn config(instance: &str, interface: &str, extra_xdp: &str) -> String {
    format!(
        "instance = \"{instance}\"\n[xdp]\ninterface = \"{interface}\"\n{extra_xdp}\n\n\
         [[service]]\nname = \"web\"\nvip = \"198.18.2.99\"\nport = 80\n"
    )
}

/// Runs `lb run` to completion in `ns` (network namespace only) and returns (success, stderr).
fn run_in(ns: &Netns, cfg: &ConfigFile) -> Result<(bool, String)> {
    let out = ns
        .command_net_only(lb_tests::require::lb_bin())?
        .args(["run", "--config"])
        .arg(cfg.path())
        .output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn missing_config_file() -> Result<()> {
    let (status, _, err) = lb(&["run", "--config", "/nonexistent/lb.toml"])?;
    assert!(!status.success());
    assert!(
        err.contains("cannot read config file /nonexistent/lb.toml: No such file or directory"),
        "{err}"
    );
    Ok(())
}

#[test]
fn bad_toml_names_file_and_line() -> Result<()> {
    let cfg = ConfigFile::new("instance = \"x\"\n[xdp]\ninterface = eth0\n")?;
    let (status, _, err) = lb(&["run", "--config", cfg.path().to_str().unwrap()])?;
    assert!(!status.success());
    let want = format!("{}:3:", cfg.path().display());
    assert!(err.contains(&want), "expected {want:?} in: {err}");
    Ok(())
}

#[test]
fn invalid_value_names_file_line_and_key() -> Result<()> {
    let cfg = ConfigFile::new(
        "[xdp]\ninterface = \"eth0\"\n[[service]]\nname = \"web\"\nvip = \"198.18.2.300\"\nport = 80\n",
    )?;
    let (status, _, err) = lb(&["check", "--config", cfg.path().to_str().unwrap()])?;
    assert!(!status.success());
    let want = format!(
        "{}:5:7: service[0].vip: \"198.18.2.300\" is not an IPv4 or IPv6 address",
        cfg.path().display()
    );
    assert!(err.contains(&want), "expected {want:?} in: {err}");
    Ok(())
}

#[test]
fn unknown_interface() -> Result<()> {
    if !require::privileged("unknown_interface") {
        return Ok(());
    }
    let inst = Instance::new("err");
    let ns = Netns::new("errif")?;
    let cfg = ConfigFile::new(&config(inst.name(), "nosuch0", ""))?;
    let (ok, err) = run_in(&ns, &cfg)?;
    assert!(!ok);
    assert!(
        err.contains("interface \"nosuch0\" does not exist"),
        "{err}"
    );
    Ok(())
}

#[test]
fn not_root() -> Result<()> {
    if !require::privileged("not_root") {
        return Ok(());
    }
    let cfg = ConfigFile::new(&config("errroot", "lo", ""))?;
    // The unprivileged user must be able to read the config to get as far as the check.
    let dir = cfg.path().parent().unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    std::fs::set_permissions(cfg.path(), std::fs::Permissions::from_mode(0o644))?;
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(lb_tests::require::lb_bin())
        .args(["run", "--config"])
        .arg(cfg.path())
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("lb run needs root, or the capabilities CAP_BPF and CAP_NET_ADMIN"),
        "{err}"
    );
    Ok(())
}

#[test]
fn bpffs_not_mounted() -> Result<()> {
    if !require::privileged("bpffs_not_mounted") {
        return Ok(());
    }
    let ns = Netns::new("errfs")?;
    let dir = tempfile::tempdir()?;
    let extra = format!("bpffs = \"{}\"", dir.path().display());
    let cfg = ConfigFile::new(&config("errfs", "lo", &extra))?;
    let (ok, err) = run_in(&ns, &cfg)?;
    assert!(!ok);
    let want = format!(
        "bpffs is not mounted at {0}: mount it with `mount -t bpf bpf {0}`",
        dir.path().display()
    );
    assert!(err.contains(&want), "expected {want:?} in: {err}");
    Ok(())
}

#[test]
fn native_attach_refused_names_mode_and_fallback_is_opt_in() -> Result<()> {
    if !require::privileged("native_attach_refused_names_mode_and_fallback_is_opt_in") {
        return Ok(());
    }
    // Loopback has no native XDP support in its driver: native attach is refused.
    let inst = Instance::new("erratt");
    let ns = Netns::new("erratt")?;
    ns.link_up("lo")?;
    let cfg = ConfigFile::new(&config(inst.name(), "lo", "mode = \"native\""))?;
    let (ok, err) = run_in(&ns, &cfg)?;
    assert!(!ok);
    assert!(
        err.contains("XDP attach to lo refused: native mode:"),
        "{err}"
    );
    assert!(err.contains("xdp.generic_fallback = true"), "{err}");
    assert!(
        !err.contains("generic mode:"),
        "generic not tried unless asked: {err}"
    );

    // Asked for by config, the fallback attaches in generic mode.
    let cfg = ConfigFile::new(&config(inst.name(), "lo", "generic_fallback = true"))?;
    let mut d = lb_tests::daemon::Daemon::start(&ns, &std::fs::read_to_string(cfg.path())?)?;
    assert!(d.log().contains("mode=\"generic\""), "{}", d.log());
    assert!(d.stop()?.success());
    Ok(())
}

#[test]
fn placeholder_object_refused_with_build_hint() -> Result<()> {
    let cfg = ConfigFile::new(&config("errobj", "lo", ""))?;
    let out = Command::new(lb_tests::require::lb_bin())
        .args(["run", "--config"])
        .arg(cfg.path())
        .env("LB_XDP_OBJECT", "/dev/null")
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("built without its XDP program; build it with `cargo xtask build`"),
        "{err}"
    );
    Ok(())
}
