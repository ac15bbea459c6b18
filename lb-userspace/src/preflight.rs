//! Checks made before touching the kernel, so failures get a message an operator can act on
//! rather than an errno from deep inside a syscall.

use std::{ffi::CString, path::Path};

/// bpffs's `statfs` magic number.
const BPF_FS_MAGIC: i64 = 0xcafe4a11;
/// Capability numbers (linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

/// What is missing for `lb run`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PreflightError {
    /// Neither root nor the capabilities that loading and attaching XDP needs.
    #[error(
        "lb run needs root, or the capabilities CAP_BPF and CAP_NET_ADMIN (CAP_SYS_ADMIN on \
         older kernels), to load and attach XDP; run it as root or grant them \
         (e.g. systemd AmbientCapabilities=CAP_BPF CAP_NET_ADMIN)"
    )]
    NotPrivileged,
    /// The configured interface does not exist in this network namespace.
    #[error(
        "interface {0:?} does not exist (`ip link` lists the interfaces; check xdp.interface)"
    )]
    UnknownInterface(String),
    /// The configured path is not a bpffs mount.
    #[error(
        "bpffs is not mounted at {0}: mount it with `mount -t bpf bpf {0}` (or set xdp.bpffs \
         to where it is mounted)"
    )]
    BpffsNotMounted(String),
}

/// Fails unless the process may load and attach XDP programs.
pub fn check_privileges() -> Result<(), PreflightError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return Ok(());
    }
    let caps = effective_caps().unwrap_or(0);
    let has = |c: u32| caps & (1u64 << c) != 0;
    if has(CAP_NET_ADMIN) && (has(CAP_BPF) || has(CAP_SYS_ADMIN)) {
        Ok(())
    } else {
        Err(PreflightError::NotPrivileged)
    }
}

/// The effective capability set from /proc/self/status.
fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).ok()
}

/// Fails unless `name` is an interface of this network namespace; returns its index.
pub fn check_interface(name: &str) -> Result<u32, PreflightError> {
    let unknown = || PreflightError::UnknownInterface(name.to_string());
    let c = CString::new(name).map_err(|_| unknown())?;
    // SAFETY: c is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        Err(unknown())
    } else {
        Ok(index)
    }
}

/// Fails unless `path` is a mounted bpffs.
pub fn check_bpffs(path: &Path) -> Result<(), PreflightError> {
    let not_mounted = || PreflightError::BpffsNotMounted(path.display().to_string());
    let c = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| not_mounted())?;
    // SAFETY: zeroed statfs is a valid out-parameter; c is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(not_mounted());
    }
    if st.f_type as i64 == BPF_FS_MAGIC {
        Ok(())
    } else {
        Err(not_mounted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmp_is_not_bpffs() {
        let e = check_bpffs(Path::new("/tmp")).unwrap_err();
        assert!(e.to_string().contains("mount -t bpf bpf /tmp"), "{e}");
    }

    #[test]
    fn loopback_exists_and_nonsense_does_not() {
        assert!(check_interface("lo").is_ok());
        assert_eq!(
            check_interface("nope0"),
            Err(PreflightError::UnknownInterface("nope0".into()))
        );
    }
}
