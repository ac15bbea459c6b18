//! Adding and removing virtual addresses on an interface, over rtnetlink.
//!
//! The failover path adds the VIP on takeover and removes it on step-down; both must be
//! idempotent (a restarted daemon may find the VIP still there, a second step-down finds
//! it gone), so "already exists" and "not there" count as success. IPv6 VIPs are added
//! with `nodad`: duplicate address detection would hold the address back for about a
//! second, and VRRP already guarantees a single owner.

use futures_util::TryStreamExt;
use rtnetlink::{
    packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags},
    Handle,
};
use std::net::IpAddr;

/// Why an address could not be added or removed.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkAddrError {
    /// The netlink socket could not be opened.
    #[error("cannot open a netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    /// The interface does not exist (any more).
    #[error("interface {0:?} does not exist")]
    NoInterface(String),
    /// The kernel refused the request.
    #[error("{op} {addr}/{prefix_len} on {interface}: {source}")]
    Request {
        /// "add" or "del".
        op: &'static str,
        /// The address.
        addr: IpAddr,
        /// Its prefix length.
        prefix_len: u8,
        /// The interface name.
        interface: String,
        /// What netlink answered (boxed: the error carries a whole netlink message).
        source: Box<rtnetlink::Error>,
    },
}

/// A netlink connection for address changes, driven by a task on the current runtime.
#[derive(Clone)]
pub struct AddrHandle {
    handle: Handle,
}

impl AddrHandle {
    /// Opens the connection and spawns its driver task; must run inside a tokio runtime.
    pub fn new() -> Result<Self, NetlinkAddrError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(NetlinkAddrError::Socket)?;
        tokio::spawn(conn);
        Ok(Self { handle })
    }

    /// Adds `addr/prefix_len` to interface `ifindex` (`ip addr add ... nodad`); an address
    /// that is already there is success.
    pub async fn add(
        &self,
        ifindex: u32,
        interface: &str,
        addr: IpAddr,
        prefix_len: u8,
    ) -> Result<(), NetlinkAddrError> {
        let mut req = self.handle.address().add(ifindex, addr, prefix_len);
        if addr.is_ipv6() {
            let msg = req.message_mut();
            msg.header.flags |= AddressHeaderFlags::Nodad;
            msg.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        match req.execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(request_error("add", interface, addr, prefix_len, e)),
        }
    }

    /// Removes `addr` from interface `ifindex` (whatever its prefix length); an address that
    /// is not there is success.
    pub async fn del(
        &self,
        ifindex: u32,
        interface: &str,
        addr: IpAddr,
        prefix_len: u8,
    ) -> Result<(), NetlinkAddrError> {
        let mut found = self
            .handle
            .address()
            .get()
            .set_link_index_filter(ifindex)
            .set_address_filter(addr)
            .execute();
        loop {
            match found.try_next().await {
                Ok(Some(msg)) => match self.handle.address().del(msg).execute().await {
                    Ok(()) => {}
                    Err(e) if errno(&e) == Some(libc::EADDRNOTAVAIL) => {}
                    Err(e) => return Err(request_error("del", interface, addr, prefix_len, e)),
                },
                Ok(None) => return Ok(()),
                Err(e) if errno(&e) == Some(libc::ENODEV) => {
                    return Err(NetlinkAddrError::NoInterface(interface.to_string()))
                }
                Err(e) => return Err(request_error("del", interface, addr, prefix_len, e)),
            }
        }
    }

    /// Whether `addr` on interface `ifindex` is still tentative (IPv6 duplicate address
    /// detection running): the kernel refuses to send from it until DAD is done.
    pub async fn is_tentative(&self, ifindex: u32, addr: IpAddr) -> Result<bool, rtnetlink::Error> {
        let mut found = self
            .handle
            .address()
            .get()
            .set_link_index_filter(ifindex)
            .set_address_filter(addr)
            .execute();
        let Some(msg) = found.try_next().await? else {
            return Ok(false);
        };
        let in_attr = msg.attributes.iter().any(
            |a| matches!(a, AddressAttribute::Flags(f) if f.contains(AddressFlags::Tentative)),
        );
        Ok(in_attr || msg.header.flags.contains(AddressHeaderFlags::Tentative))
    }

    /// Whether `addr` is currently on interface `ifindex`.
    pub async fn has(&self, ifindex: u32, addr: IpAddr) -> Result<bool, rtnetlink::Error> {
        let mut found = self
            .handle
            .address()
            .get()
            .set_link_index_filter(ifindex)
            .set_address_filter(addr)
            .execute();
        Ok(found.try_next().await?.is_some())
    }
}

fn request_error(
    op: &'static str,
    interface: &str,
    addr: IpAddr,
    prefix_len: u8,
    source: rtnetlink::Error,
) -> NetlinkAddrError {
    if errno(&source) == Some(libc::ENODEV) {
        return NetlinkAddrError::NoInterface(interface.to_string());
    }
    NetlinkAddrError::Request {
        op,
        addr,
        prefix_len,
        interface: interface.to_string(),
        source: Box::new(source),
    }
}

/// The positive errno of a netlink error answer, if it is one.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(m.raw_code().abs()),
        _ => None,
    }
}
