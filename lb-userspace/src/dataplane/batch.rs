//! Whole-map `bpf(2)` calls that aya 0.14 has no wrapper for.
//!
//! Writing a Maglev table: it has up to 65537 slots; one `BPF_MAP_UPDATE_ELEM` per slot
//! costs tens of milliseconds, which is what stands between a health decision and the
//! XDP program seeing it. `BPF_MAP_UPDATE_BATCH` (Linux 5.6) does it in one call.
//!
//! Counting a conntrack table for the stats page: walking its keys is one syscall per
//! flow (a quarter of a second for a full default table, on every page refresh);
//! `BPF_MAP_LOOKUP_BATCH` reads thousands of entries per call.

use std::{
    io,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
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

/// Entries read per `BPF_MAP_LOOKUP_BATCH` call when counting.
const COUNT_CHUNK: usize = 4096;

/// The number of entries in a hash map (LRU included) whose keys and values have the
/// given sizes, read in batches. The count is a snapshot: the XDP program may add and
/// evict flows meanwhile.
pub fn count_hash_entries(
    map: BorrowedFd<'_>,
    key_size: usize,
    value_size: usize,
) -> io::Result<usize> {
    let mut keys = vec![0u8; key_size * COUNT_CHUNK];
    let mut values = vec![0u8; value_size * COUNT_CHUNK];
    // The hash map's batch position is a bucket index (u32); 8 bytes leave room.
    let (mut at, mut next) = (0u64, 0u64);
    let mut first = true;
    let mut total = 0usize;
    loop {
        let mut attr = [0u8; ATTR_SIZE];
        // struct { in_batch, out_batch, keys, values: u64; count, map_fd: u32; ... }
        if !first {
            put_u64(&mut attr, 0, std::ptr::addr_of!(at) as u64);
        }
        put_u64(&mut attr, 8, std::ptr::addr_of_mut!(next) as u64);
        put_u64(&mut attr, 16, keys.as_mut_ptr() as u64);
        put_u64(&mut attr, 24, values.as_mut_ptr() as u64);
        put_u32(&mut attr, 32, COUNT_CHUNK as u32);
        put_u32(&mut attr, 36, map.as_raw_fd() as u32);
        let r = bpf(BPF_MAP_LOOKUP_BATCH, &mut attr);
        // The kernel writes back how many entries this call copied, also on ENOENT.
        total += u32::from_ne_bytes([attr[32], attr[33], attr[34], attr[35]]) as usize;
        match r {
            Ok(_) => {
                at = next;
                first = false;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(total),
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
    const BPF_MAP_TYPE_LRU_HASH: u32 = 9;

    fn lru_hash(max: u32) -> io::Result<OwnedFd> {
        let mut attr = [0u8; ATTR_SIZE];
        put_u32(&mut attr, 0, BPF_MAP_TYPE_LRU_HASH);
        put_u32(&mut attr, 4, 16); // key_size (an IPv4 flow key)
        put_u32(&mut attr, 8, 24); // value_size (a flow state)
        put_u32(&mut attr, 12, max);
        put_u32(&mut attr, 16, 1 << 1); // BPF_F_NO_COMMON_LRU, as the conntrack maps
        let fd = bpf(BPF_MAP_CREATE, &mut attr)?;
        // SAFETY: a new descriptor nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }

    fn insert(map: &OwnedFd, key: &[u8; 16]) {
        let value = [0u8; 24];
        let mut attr = [0u8; ATTR_SIZE];
        put_u32(&mut attr, 0, map.as_raw_fd() as u32);
        put_u64(&mut attr, 8, key.as_ptr() as u64);
        put_u64(&mut attr, 16, value.as_ptr() as u64);
        bpf(BPF_MAP_UPDATE_ELEM, &mut attr).expect("insert");
    }

    #[test]
    fn counts_every_entry_across_batches() {
        let map = match lru_hash(65536) {
            Ok(m) => m,
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!("skipped: cannot create a BPF map here ({e}); CI runs it as root");
                return;
            }
            Err(e) => panic!("creating a BPF map (CI runs as root): {e}"),
        };
        assert_eq!(count_hash_entries(map.as_fd(), 16, 24).expect("count"), 0);
        // More than two batches' worth, from a few distinct clients.
        for i in 0..10_000u32 {
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&i.to_ne_bytes());
            insert(&map, &key);
        }
        assert_eq!(
            count_hash_entries(map.as_fd(), 16, 24).expect("count"),
            10_000
        );
    }
}
