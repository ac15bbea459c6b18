//! Foundation acceptance 6: with `CI` set, a test that lacks root, BPF or namespaces fails
//! instead of skipping; without `CI` it says SKIPPED and passes.
//!
//! The test runs its own probe test again as the unprivileged user `nobody`.

use anyhow::Result;
use lb_tests::require;
use std::process::Command;

/// A privileged test like any other; as root it passes, as nobody it cannot run.
#[test]
fn probe_privileged() {
    if !require::privileged("probe_privileged") {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0);
}

/// Runs `probe_privileged` from this test binary as nobody, with or without `CI`.
fn probe_as_nobody(ci: bool) -> Result<(bool, String)> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
    ])
    .arg(exe)
    .args([
        "--exact",
        "probe_privileged",
        "--nocapture",
        "--test-threads=1",
    ])
    .env_remove("CI");
    if ci {
        cmd.env("CI", "true");
    }
    let out = cmd.output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

#[test]
fn unprivileged_test_fails_under_ci_and_skips_loudly_otherwise() -> Result<()> {
    if !require::privileged("unprivileged_test_fails_under_ci_and_skips_loudly_otherwise") {
        return Ok(());
    }
    let (ok, out) = probe_as_nobody(true)?;
    assert!(!ok, "under CI the unprivileged run must fail:\n{out}");
    assert!(out.contains("CI is set: this test needs"), "{out}");
    assert!(out.contains("not running as root"), "{out}");

    let (ok, out) = probe_as_nobody(false)?;
    assert!(ok, "outside CI the unprivileged run skips:\n{out}");
    assert!(
        out.contains("SKIPPED probe_privileged: not running as root"),
        "{out}"
    );
    Ok(())
}
