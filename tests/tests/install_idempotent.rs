//! Foundation acceptance 1 (second half): the installer that the README's test command ran
//! first finds everything in place on a second run and installs nothing.

use std::{path::Path, process::Command, time::Instant};

#[test]
fn second_install_run_does_nothing() {
    if !lb_tests::require::privileged("second_install_run_does_nothing") {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/install-deps.sh");
    let started = Instant::now();
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .expect("running install-deps.sh");
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "install-deps.sh failed:\n{err}");
    assert!(err.contains("Debian packages: all present"), "{err}");
    assert!(err.contains("bpf-linker 0.13.0: present"), "{err}");
    assert!(
        !err.contains("installing"),
        "a second run installs nothing:\n{err}"
    );
    assert!(
        !err.contains("building"),
        "a second run builds nothing:\n{err}"
    );
    assert!(took.as_secs() < 30, "a second run is quick: {took:?}");
}
