//! The CI skip policy: what a test does when the machine cannot run it.
//!
//! On a developer's machine a test that needs root, network namespaces, bpffs or a peer
//! program that is not there prints `SKIPPED <test>: <reason>` and passes, so `cargo test`
//! stays usable without root. In CI (`CI` set to a non-empty value) the same situation is a
//! failure with the reason spelled out: a CI run that silently skipped the kernel tests
//! would report green while testing nothing.
//!
//! Tests start with `if !lb_tests::require::privileged("name") { return; }`.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use crate::netns::Netns;

/// `statfs(2)` magic of bpffs (`BPF_FS_MAGIC` in linux/magic.h).
const BPF_FS_MAGIC: u64 = 0xcafe_4a11;

/// Where the daemon and the tests expect bpffs.
const BPFFS_PATH: &str = "/sys/fs/bpf";

/// Whether we run under CI: the variable is set to something non-empty.
fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// The name of the running test: libtest names each test's thread after it.
fn current_test_name() -> String {
    std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .unwrap_or("<unknown test>")
        .to_owned()
}

/// Applies the policy to one unmet requirement: panic under CI, else report and skip.
fn skip_or_fail(test_name: &str, needs: &str, reason: &str) -> bool {
    if in_ci() {
        panic!("CI is set: this test needs {needs} and cannot run: {reason}");
    }
    eprintln!("SKIPPED {test_name}: {reason}");
    false
}

/// Whether `path` is on a bpffs mount.
fn is_bpffs(path: &str) -> Result<bool, String> {
    let c = CString::new(path).map_err(|e| e.to_string())?;
    // SAFETY: zeroed statfs is a valid out-parameter; `c` is a valid C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(format!(
            "statfs {path}: {}",
            std::io::Error::last_os_error()
        ));
    }
    // f_type's width differs between architectures; the magic fits in 32 bits.
    #[allow(clippy::unnecessary_cast)]
    let magic = (st.f_type as u64) & 0xffff_ffff;
    Ok(magic == BPF_FS_MAGIC)
}

/// Everything that stops privileged tests from running here, or `None` if nothing does.
fn privileged_blocker() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Some(format!("not running as root (euid {euid})"));
    }
    let mut missing = Vec::new();
    match is_bpffs(BPFFS_PATH) {
        Ok(true) => {}
        Ok(false) => missing.push(format!(
            "bpffs is not mounted at {BPFFS_PATH} (mount -t bpf bpf {BPFFS_PATH})"
        )),
        Err(e) => missing.push(format!("bpffs is not mounted at {BPFFS_PATH}: {e}")),
    }
    // The real check for namespaces is making one: capabilities, seccomp, a missing `ip`
    // or /run/netns all show up here.
    if let Err(e) = Netns::new("lbprobe") {
        missing.push(format!("cannot create a network namespace: {e:#}"));
    }
    (!missing.is_empty()).then(|| missing.join("; "))
}

/// Whether this test may use root, network namespaces and BPF. True when the process is
/// root, can create a network namespace, and bpffs is mounted at /sys/fs/bpf. Otherwise
/// panics under CI (naming what is missing) or prints `SKIPPED <test_name>: <reason>` to
/// stderr and returns false, so the caller returns early.
pub fn privileged(test_name: &str) -> bool {
    match privileged_blocker() {
        None => true,
        Some(reason) => skip_or_fail(test_name, "root/netns/BPF", &reason),
    }
}

/// Where `name` is found on `PATH` (or `name` itself if it contains a `/`), if it is an
/// executable file.
pub fn find_program(name: &str) -> Option<PathBuf> {
    fn executable(p: &Path) -> bool {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    }
    if name.contains('/') {
        let p = PathBuf::from(name);
        return executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| executable(p))
}

/// Whether the peer program `name` (e.g. "curl", "haproxy") is on `PATH`, with the same
/// policy as [`privileged`]: panic under CI, else print `SKIPPED <test>: <reason>` and
/// return false. The test name is taken from the current thread, which libtest names
/// after the test.
pub fn program(name: &str) -> bool {
    if find_program(name).is_some() {
        return true;
    }
    let reason = format!("program `{name}` not found on PATH (install it, e.g. with apt-get)");
    skip_or_fail(&current_test_name(), &format!("`{name}`"), &reason)
}

/// The `lb` binary under test: `$LB_BIN` if set, else `target/<profile>/lb` next to the
/// directory of the running test executable (which lives in `target/<profile>/deps/`).
/// Panics if it does not exist, because a stale or missing binary would make every
/// end-to-end test fail in a confusing way.
pub fn lb_bin() -> PathBuf {
    let path = match std::env::var_os("LB_BIN").filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => {
            let exe = std::env::current_exe()
                .unwrap_or_else(|e| panic!("cannot find the running test executable: {e}"));
            let deps = exe.parent().unwrap_or_else(|| Path::new("."));
            deps.join("..").join("lb")
        }
    };
    if !path.is_file() {
        panic!(
            "the lb binary is missing at {}: build it first: cargo xtask test builds it \
             (or set LB_BIN)",
            path.display()
        );
    }
    path
}
