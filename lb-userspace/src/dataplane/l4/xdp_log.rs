//! The userspace end of the XDP program's debug logs (`l4.debug_log`): aya-log records
//! from the program's ring buffer, handed to the `log` crate, which the daemon's tracing
//! subscriber prints (target `xdp`).

use aya::Ebpf;

/// The ring buffer aya-log-ebpf writes to (taken out of the object once the reader runs).
const LOG_MAP: &str = "AYA_LOGS";

/// Starts reading the program's log records on the current tokio runtime, once: later
/// calls (a reload) find the ring buffer already taken and do nothing. Without a runtime
/// (tests through BPF_PROG_TEST_RUN) records stay in the ring buffer, which overwrites
/// nothing and costs the program only a failed reserve when full.
pub fn start(ebpf: &mut Ebpf) {
    if ebpf.map(LOG_MAP).is_none() {
        return;
    }
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("l4.debug_log: no async runtime to read XDP logs with");
        return;
    };
    let logger = match aya_log::EbpfLogger::init(ebpf) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "l4.debug_log: cannot read the XDP program's logs");
            return;
        }
    };
    let _guard = rt.enter();
    // SAFETY: the logger owns the ring buffer's fd and keeps it open, unchanged, for as
    // long as the AsyncFd owns the logger.
    let registered = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE)
    };
    let mut fd = match registered {
        Ok(fd) => fd,
        Err(e) => {
            tracing::warn!(error = %e, "l4.debug_log: cannot poll the XDP log ring buffer");
            return;
        }
    };
    rt.spawn(async move {
        loop {
            let Ok(mut guard) = fd.readable_mut().await else {
                return;
            };
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    });
    tracing::info!("XDP debug logging on (target xdp)");
}
