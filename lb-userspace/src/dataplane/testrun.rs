//! BPF_PROG_TEST_RUN: runs the loaded XDP program on a packet without a network.
//!
//! aya 0.14 has no wrapper, so this is the one `bpf(2)` call, as Katran's tester makes it.
//! Used by the packet fixture tests and the per-packet benchmark.

use std::os::fd::{AsRawFd, BorrowedFd};

const BPF_PROG_TEST_RUN: libc::c_long = 10;
/// Room for encapsulation headers the program may push in front of the packet.
const OUT_HEADROOM: usize = 256;

/// `bpf_attr.test` as the kernel lays it out (linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct TestAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

/// What one run returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestRun {
    /// The XDP action (`XDP_PASS` = 2, `XDP_TX` = 3, `XDP_DROP` = 1, `XDP_ABORTED` = 0).
    pub action: u32,
    /// The packet as the program left it.
    pub output: Vec<u8>,
    /// Mean nanoseconds per run, as the kernel measured it.
    pub duration_ns: u32,
}

/// Runs the program `repeat` times on `packet` (repeat 0 counts as 1).
///
/// With `repeat > 1` the kernel runs the program again on the buffer it already rewrote,
/// so packets the program rewrites must be timed one call at a time.
pub fn run(prog: BorrowedFd<'_>, packet: &[u8], repeat: u32) -> std::io::Result<TestRun> {
    let mut out = vec![0u8; packet.len() + OUT_HEADROOM];
    let mut attr = TestAttr {
        prog_fd: prog.as_raw_fd() as u32,
        data_size_in: packet.len() as u32,
        data_size_out: out.len() as u32,
        data_in: packet.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat,
        ..Default::default()
    };
    // SAFETY: attr points at valid buffers of the sizes given, alive for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestAttr,
            std::mem::size_of::<TestAttr>() as u32,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    out.truncate(attr.data_size_out as usize);
    Ok(TestRun {
        action: attr.retval,
        output: out,
        duration_ns: attr.duration,
    })
}

/// One run of `packet` (repeat 1) writing the output into `out`, for tight benchmark
/// loops that must not allocate: returns (action, kernel-measured nanoseconds).
pub fn run_timed(
    prog: BorrowedFd<'_>,
    packet: &[u8],
    out: &mut [u8],
) -> std::io::Result<(u32, u32)> {
    let mut attr = TestAttr {
        prog_fd: prog.as_raw_fd() as u32,
        data_size_in: packet.len() as u32,
        data_size_out: out.len() as u32,
        data_in: packet.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat: 1,
        ..Default::default()
    };
    // SAFETY: attr points at valid buffers of the sizes given, alive for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestAttr,
            std::mem::size_of::<TestAttr>() as u32,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((attr.retval, attr.duration))
}
