//! Writing a whole Maglev table in one `bpf(2)` call.
//!
//! A table has up to 65537 slots; one `BPF_MAP_UPDATE_ELEM` per slot costs tens of
//! milliseconds, which is what stands between a health decision and the XDP program
//! seeing it. `BPF_MAP_UPDATE_BATCH` (Linux 5.6) does it in one call; aya 0.14 has no
//! wrapper, so this is the raw call, next to the map creation it needs.

use std::{
    io,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
const BPF_MAP_TYPE_ARRAY: u32 = 2;
/// `bpf_attr` is larger than the parts used here; the kernel wants the rest zero.
const ATTR_SIZE: usize = 128;

fn bpf(cmd: libc::c_long, attr: &mut [u8; ATTR_SIZE]) -> io::Result<libc::c_long> {
    // SAFETY: attr is a zero-padded bpf_attr of ATTR_SIZE bytes, valid for the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), ATTR_SIZE as u32) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn put_u32(attr: &mut [u8; ATTR_SIZE], at: usize, v: u32) {
    attr[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put_u64(attr: &mut [u8; ATTR_SIZE], at: usize, v: u64) {
    attr[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

/// Creates an array of `len` u32 values with `flags` (a Maglev inner table).
pub fn create_u32_array(len: u32, flags: u32, name: &str) -> io::Result<OwnedFd> {
    let mut attr = [0u8; ATTR_SIZE];
    put_u32(&mut attr, 0, BPF_MAP_TYPE_ARRAY); // map_type
    put_u32(&mut attr, 4, 4); // key_size
    put_u32(&mut attr, 8, 4); // value_size
    put_u32(&mut attr, 12, len); // max_entries
    put_u32(&mut attr, 16, flags); // map_flags
    let n = name.len().min(15);
    attr[28..28 + n].copy_from_slice(&name.as_bytes()[..n]); // map_name[16] after inner_map_fd, numa_node
    let fd = bpf(BPF_MAP_CREATE, &mut attr)?;
    // SAFETY: the kernel returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Sets `values[i]` at index `i` for every i, in one call.
pub fn update_all_u32(map: BorrowedFd<'_>, values: &[u32]) -> io::Result<()> {
    let keys: Vec<u32> = (0..values.len() as u32).collect();
    let mut attr = [0u8; ATTR_SIZE];
    // struct { in_batch, out_batch, keys, values: u64; count, map_fd: u32; elem_flags, flags: u64 }
    put_u64(&mut attr, 16, keys.as_ptr() as u64);
    put_u64(&mut attr, 24, values.as_ptr() as u64);
    put_u32(&mut attr, 32, values.len() as u32);
    put_u32(&mut attr, 36, map.as_raw_fd() as u32);
    bpf(BPF_MAP_UPDATE_BATCH, &mut attr)?;
    let done = u32::from_ne_bytes([attr[32], attr[33], attr[34], attr[35]]);
    if done as usize != values.len() {
        return Err(io::Error::other(format!(
            "batch update wrote {done} of {} entries",
            values.len()
        )));
    }
    Ok(())
}
