//! What VRRP needs to know about its interface: index, MAC, and the addresses that serve
//! as the router's primary address (the advert source and the tie-breaker).
//!
//! Read with getifaddrs(3), which asks the kernel over netlink and therefore sees the
//! daemon's own network namespace (sysfs may show another one, see TOOLCHAIN.md).

use std::{
    ffi::CStr,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

/// Facts about one interface, at the time it was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iface {
    /// Interface name.
    pub name: String,
    /// Interface index.
    pub index: u32,
    /// Link-layer address (all zero when the link has none).
    pub mac: [u8; 6],
    /// Every address on the interface (both families).
    pub addrs: Vec<IpAddr>,
}

impl Iface {
    /// The primary address for a virtual router of the given family: the first IPv4
    /// address that is not one of `vips`, or the first IPv6 link-local address (RFC 5798
    /// 5.1.2.2: IPv6 adverts come from the link-local address).
    pub fn primary(&self, ipv6: bool, vips: &[IpAddr]) -> Option<IpAddr> {
        self.addrs.iter().copied().find(|a| match a {
            IpAddr::V4(_) => !ipv6 && !vips.contains(a),
            IpAddr::V6(v6) => ipv6 && is_link_local(v6),
        })
    }
}

/// Whether an IPv6 address is link-local (fe80::/10).
pub fn is_link_local(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// Reads interface `name`; `None` when it does not exist.
pub fn read(name: &str) -> std::io::Result<Option<Iface>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut found: Option<Iface> = None;
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned and we have not freed it.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let ifname = unsafe { CStr::from_ptr(ifa.ifa_name) };
        if ifname.to_bytes() != name.as_bytes() {
            continue;
        }
        let entry = found.get_or_insert_with(|| Iface {
            name: name.to_string(),
            index: 0,
            mac: [0; 6],
            addrs: Vec::new(),
        });
        if ifa.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_addr points at a sockaddr whose family says which struct it is.
        let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        match family {
            libc::AF_INET => {
                // SAFETY: family AF_INET means a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                entry.addrs.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    sin.sin_addr.s_addr,
                ))));
            }
            libc::AF_INET6 => {
                // SAFETY: family AF_INET6 means a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                entry
                    .addrs
                    .push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
            }
            libc::AF_PACKET => {
                // SAFETY: family AF_PACKET means a sockaddr_ll.
                let ll = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_ll) };
                entry.index = u32::try_from(ll.sll_ifindex).unwrap_or(0);
                if usize::from(ll.sll_halen) >= 6 {
                    entry.mac.copy_from_slice(&ll.sll_addr[..6]);
                }
            }
            _ => {}
        }
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    if let Some(i) = found.as_mut() {
        if i.index == 0 {
            let c = std::ffi::CString::new(name).map_err(std::io::Error::other)?;
            // SAFETY: c is NUL-terminated.
            i.index = unsafe { libc::if_nametoindex(c.as_ptr()) };
        }
    }
    Ok(found.filter(|i| i.index != 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_reads_and_primary_skips_vips() {
        let lo = read("lo").unwrap().expect("lo exists");
        assert!(lo.index > 0);
        assert!(lo.addrs.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(
            lo.primary(false, &[]),
            Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
        );
        assert_eq!(lo.primary(false, &[IpAddr::V4(Ipv4Addr::LOCALHOST)]), None);
        assert!(read("nope0").unwrap().is_none());
        assert!(is_link_local(&"fe80::1".parse().unwrap()));
        assert!(!is_link_local(&"2001:db8::1".parse().unwrap()));
    }
}
