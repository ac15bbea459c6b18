//! `[global] user`/`group`: after setup, `lb run` becomes that user and keeps only the
//! capabilities it needs at run time ([`RUNTIME_CAPS`]).
//!
//! Linux keeps credentials per thread, and the daemon already runs many (the async
//! runtime's workers, the VRRP thread) when setup is done. glibc's `setresuid` changes
//! every thread, but capabilities have no such call, so this module does what libcap's
//! psx does: every thread of the process is sent a signal whose handler makes the same
//! raw system calls (keep capabilities across the uid change, set groups, gid and uid,
//! shrink the bounding set, then set its capabilities), and the result is read back from
//! `/proc/self/task/*/status` until every thread reports the new uid and capabilities.
//! Threads created later inherit them.

use std::{
    ffi::CString,
    sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering::SeqCst},
    time::{Duration, Instant},
};

/// `CAP_NET_BIND_SERVICE`: bind HTTP listeners below 1024 on reload.
pub const CAP_NET_BIND_SERVICE: u32 = 10;
/// `CAP_NET_ADMIN`: VIP add/del (netlink), XDP attach/detach on failover.
pub const CAP_NET_ADMIN: u32 = 12;
/// `CAP_NET_RAW`: VRRP and gratuitous ARP / NA raw sockets.
pub const CAP_NET_RAW: u32 = 13;
/// `CAP_BPF`: map reads and updates (`bpf()` is refused without it when unprivileged BPF
/// is disabled, the default), new Maglev tables on reload.
pub const CAP_BPF: u32 = 39;
/// What the daemon keeps after dropping privileges.
pub const RUNTIME_CAPS: &[u32] = &[CAP_NET_BIND_SERVICE, CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF];
/// How long the switch may take before it is reported as failed.
pub const DROP_TIMEOUT: Duration = Duration::from_secs(3);

/// Why privileges could not be dropped.
#[derive(Debug, thiserror::Error)]
pub enum PrivDropError {
    /// No such user.
    #[error("[global] user {0:?}: no such user")]
    NoUser(String),
    /// No such group.
    #[error("[global] group {0:?}: no such group")]
    NoGroup(String),
    /// A system call failed on some thread.
    #[error("dropping privileges to uid {uid} gid {gid}: {step} failed: {source}")]
    Syscall {
        /// uid switched to.
        uid: u32,
        /// gid switched to.
        gid: u32,
        /// Which call.
        step: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// Some threads did not switch in time.
    #[error("dropping privileges: threads {0:?} did not switch within {DROP_TIMEOUT:?}")]
    Timeout(Vec<u32>),
    /// The signal handler could not be installed.
    #[error("dropping privileges: cannot install the signal handler: {0}")]
    Handler(#[source] std::io::Error),
}

/// Who to become: numeric ids and the capability mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// User id.
    pub uid: u32,
    /// Group id (also the only supplementary group).
    pub gid: u32,
    /// Capabilities kept (bit n = capability n).
    pub caps: u64,
}

/// The mask of `caps`.
pub fn mask(caps: &[u32]) -> u64 {
    caps.iter().fold(0u64, |m, &c| m | (1u64 << c))
}

/// Resolves a user (name or number) to (uid, primary gid).
pub fn lookup_user(user: &str) -> Result<(u32, u32), PrivDropError> {
    let c = CString::new(user).map_err(|_| PrivDropError::NoUser(user.into()))?;
    // SAFETY: getpwnam_r with a buffer we own; the result points into it.
    let found = unsafe {
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        let mut out: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut out);
        (rc == 0 && !out.is_null()).then_some((pw.pw_uid, pw.pw_gid))
    };
    if let Some(ids) = found {
        return Ok(ids);
    }
    user.parse::<u32>()
        .map(|uid| (uid, uid))
        .map_err(|_| PrivDropError::NoUser(user.into()))
}

/// Resolves a group (name or number) to its gid.
pub fn lookup_group(group: &str) -> Result<u32, PrivDropError> {
    let c = CString::new(group).map_err(|_| PrivDropError::NoGroup(group.into()))?;
    // SAFETY: getgrnam_r with a buffer we own; the result points into it.
    let found = unsafe {
        let mut gr: libc::group = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 64 * 1024];
        let mut out: *mut libc::group = std::ptr::null_mut();
        let rc = libc::getgrnam_r(c.as_ptr(), &mut gr, buf.as_mut_ptr(), buf.len(), &mut out);
        (rc == 0 && !out.is_null()).then_some(gr.gr_gid)
    };
    if let Some(g) = found {
        return Ok(g);
    }
    group
        .parse::<u32>()
        .map_err(|_| PrivDropError::NoGroup(group.into()))
}

static UID: AtomicU32 = AtomicU32::new(0);
static GID: AtomicU32 = AtomicU32::new(0);
static CAPS: AtomicU64 = AtomicU64::new(0);
/// First failure in any thread: (step index + 1) << 16 | errno; 0 = none.
static FAILED: AtomicI32 = AtomicI32::new(0);

const STEPS: [&str; 6] = [
    "prctl(PR_SET_KEEPCAPS)",
    "setgroups",
    "setresgid",
    "prctl(PR_CAPBSET_DROP)",
    "setresuid",
    "capset",
];
/// The highest capability number the bounding set is trimmed up to (the kernel says
/// EINVAL beyond its own last one, which is ignored).
const CAP_LAST: u32 = 63;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Switches the calling thread. Only raw system calls and atomics: it runs in a signal
/// handler.
fn switch_this_thread() {
    let (uid, gid, caps) = (UID.load(SeqCst), GID.load(SeqCst), CAPS.load(SeqCst));
    let fail = |step: usize| {
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        let _ = FAILED.compare_exchange(0, ((step as i32 + 1) << 16) | errno, SeqCst, SeqCst);
    };
    // SAFETY: plain system calls on this thread's credentials, with valid arguments.
    unsafe {
        if libc::syscall(libc::SYS_getuid) as u32 == uid {
            return; // already switched (a repeated signal)
        }
        if libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 {
            return fail(0);
        }
        let groups = [gid];
        if libc::syscall(libc::SYS_setgroups, 1usize, groups.as_ptr()) != 0 {
            return fail(1);
        }
        if libc::syscall(libc::SYS_setresgid, gid, gid, gid) != 0 {
            return fail(2);
        }
        for cap in 0..=CAP_LAST {
            if caps & (1u64 << cap) == 0
                && libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) != 0
                && *libc::__errno_location() != libc::EINVAL
            {
                return fail(3);
            }
        }
        if libc::syscall(libc::SYS_setresuid, uid, uid, uid) != 0 {
            return fail(4);
        }
        let mut hdr = CapHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let (lo, hi) = (caps as u32, (caps >> 32) as u32);
        let data = [
            CapData {
                effective: lo,
                permitted: lo,
                inheritable: 0,
            },
            CapData {
                effective: hi,
                permitted: hi,
                inheritable: 0,
            },
        ];
        if libc::syscall(libc::SYS_capset, &mut hdr, data.as_ptr()) != 0 {
            return fail(5);
        }
        libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0);
    }
}

extern "C" fn on_signal(_: libc::c_int) {
    let saved = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    switch_this_thread();
    // SAFETY: restores errno for the interrupted code.
    unsafe { *libc::__errno_location() = saved };
}

/// What `/proc/self/task/<tid>/status` says: (real, effective, saved, fs uid) and CapEff.
fn thread_creds(tid: u32) -> Option<([u32; 4], u64)> {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).ok()?;
    let mut uids = None;
    let mut eff = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("Uid:") {
            let n: Vec<u32> = v
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            uids = n.try_into().ok();
        } else if let Some(v) = line.strip_prefix("CapEff:") {
            eff = u64::from_str_radix(v.trim(), 16).ok();
        }
    }
    Some((uids?, eff?))
}

fn threads() -> Vec<u32> {
    std::fs::read_dir("/proc/self/task")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

/// Makes every thread of the process `target`: supplementary groups = gid, gid, uid, and
/// exactly `target.caps` as permitted and effective capabilities (and bounding set).
pub fn drop_all_threads(target: Target) -> Result<(), PrivDropError> {
    UID.store(target.uid, SeqCst);
    GID.store(target.gid, SeqCst);
    CAPS.store(target.caps, SeqCst);
    FAILED.store(0, SeqCst);
    let sig = libc::SIGRTMIN() + 6;
    // SAFETY: installs a handler that only makes raw system calls.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
            return Err(PrivDropError::Handler(std::io::Error::last_os_error()));
        }
    }
    // SAFETY: getpid/gettid have no preconditions.
    let (pid, me) = unsafe { (libc::getpid(), libc::syscall(libc::SYS_gettid) as u32) };
    let done = |tid: u32| {
        thread_creds(tid)
            .is_none_or(|(u, eff)| u.iter().all(|&x| x == target.uid) && eff == target.caps)
    };
    let deadline = Instant::now() + DROP_TIMEOUT;
    loop {
        if let Some(e) = failed(target) {
            return Err(e);
        }
        let pending: Vec<u32> = threads().into_iter().filter(|&t| !done(t)).collect();
        if pending.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            return Err(PrivDropError::Timeout(pending));
        }
        for tid in pending {
            if tid == me {
                continue;
            }
            // SAFETY: signals a thread of this process; a thread that has just exited
            // makes the call fail harmlessly.
            unsafe { libc::syscall(libc::SYS_tgkill, pid, tid as libc::c_int, sig) };
        }
        std::thread::sleep(Duration::from_millis(2));
        // The calling thread last, so it can still signal the others.
        if threads().into_iter().filter(|&t| t != me).all(done) {
            switch_this_thread();
        }
    }
    failed(target).map_or(Ok(()), Err)
}

fn failed(target: Target) -> Option<PrivDropError> {
    let f = FAILED.load(SeqCst);
    (f != 0).then(|| PrivDropError::Syscall {
        uid: target.uid,
        gid: target.gid,
        step: STEPS[((f >> 16) as usize).saturating_sub(1).min(STEPS.len() - 1)],
        source: std::io::Error::from_raw_os_error(f & 0xffff),
    })
}

/// The numeric target of `[global]`: user and group resolved, [`RUNTIME_CAPS`].
pub fn target(run_as: &crate::config::global::RunAs) -> Result<Target, PrivDropError> {
    let (uid, primary) = lookup_user(&run_as.user)?;
    let gid = match &run_as.group {
        Some(g) => lookup_group(g)?,
        None => primary,
    };
    Ok(Target {
        uid,
        gid,
        caps: mask(RUNTIME_CAPS),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_caps_mask() {
        assert_eq!(mask(RUNTIME_CAPS), 0x0000_0080_0000_3400);
    }

    #[test]
    fn users_and_groups_resolve_by_name_or_number() {
        assert_eq!(lookup_user("root").unwrap(), (0, 0));
        assert_eq!(lookup_user("4242").unwrap(), (4242, 4242));
        assert!(matches!(
            lookup_user("no-such-user-lb"),
            Err(PrivDropError::NoUser(_))
        ));
        assert_eq!(lookup_group("root").unwrap(), 0);
        assert_eq!(lookup_group("4243").unwrap(), 4243);
        assert!(lookup_group("no-such-group-lb").is_err());
    }
}
