//! `lb decap`: the backend side of `ipip` VIPs. Loads the object without pinning, fills
//! the decap address map, and attaches `lb_decap` until dropped.

use super::{map_err, xdp_object, DataPlaneError, DECAP_PROGRAM};
use crate::maglev::wire_addr;
use aya::{
    maps::{HashMap, MapData},
    programs::{ProgramError, Xdp, XdpMode},
    Ebpf, EbpfLoader,
};
use lb_common::{
    maps as names,
    vip::{VipAddrKey, FAMILY_V4, FAMILY_V6},
};
use std::{
    net::IpAddr,
    os::fd::{AsFd, BorrowedFd},
};

/// The decap program, attached while this value lives.
pub struct Decap {
    ebpf: Ebpf,
}

/// The decap map key of an address.
pub fn addr_key(ip: IpAddr) -> VipAddrKey {
    VipAddrKey {
        addr: wire_addr(ip),
        family: u32::from(if ip.is_ipv4() { FAMILY_V4 } else { FAMILY_V6 }),
    }
}

impl Decap {
    /// Loads the object and `lb_decap`, and writes `vips`, without attaching (fixtures use
    /// this with BPF_PROG_TEST_RUN).
    pub fn load(vips: &[IpAddr]) -> Result<Self, DataPlaneError> {
        let mut loader = EbpfLoader::new();
        // The front program's maps are created too (one object); keep them tiny here.
        loader.map_max_entries(names::CONNTRACK, 1024);
        loader.map_max_entries(names::CONNTRACK4, 1024);
        let mut ebpf = loader.load(&xdp_object()?).map_err(DataPlaneError::Load)?;
        {
            let mut map: HashMap<&mut MapData, VipAddrKey, u32> =
                super::typed_mut(&mut ebpf, names::DECAP_VIPS)?;
            for ip in vips {
                map.insert(addr_key(*ip), 0, 0)
                    .map_err(map_err(names::DECAP_VIPS))?;
            }
        }
        let prog: &mut Xdp = ebpf
            .program_mut(DECAP_PROGRAM)
            .ok_or(DataPlaneError::Program(ProgramError::NotLoaded))?
            .try_into()
            .map_err(DataPlaneError::Program)?;
        prog.load().map_err(DataPlaneError::Program)?;
        Ok(Decap { ebpf })
    }

    /// The program's fd (for BPF_PROG_TEST_RUN).
    pub fn program_fd(&self) -> Result<BorrowedFd<'_>, DataPlaneError> {
        let prog: &Xdp = self
            .ebpf
            .program(DECAP_PROGRAM)
            .ok_or(DataPlaneError::Program(ProgramError::NotLoaded))?
            .try_into()
            .map_err(DataPlaneError::Program)?;
        Ok(prog.fd().map_err(DataPlaneError::Program)?.as_fd())
    }

    /// Loads (see [`Decap::load`]) and attaches `lb_decap` to `interface` (native mode, or
    /// generic when `generic` is set).
    pub fn attach(interface: &str, vips: &[IpAddr], generic: bool) -> Result<Self, DataPlaneError> {
        let mut d = Self::load(vips)?;
        let prog: &mut Xdp = d
            .ebpf
            .program_mut(DECAP_PROGRAM)
            .ok_or(DataPlaneError::Program(ProgramError::NotLoaded))?
            .try_into()
            .map_err(DataPlaneError::Program)?;
        let mode = if generic {
            XdpMode::Skb
        } else {
            XdpMode::Driver
        };
        prog.attach(interface, mode)
            .map_err(|e| DataPlaneError::Attach {
                interface: interface.to_string(),
                tried: vec![(
                    if generic {
                        crate::config::AttachMode::Generic
                    } else {
                        crate::config::AttachMode::Native
                    },
                    super::error_chain(&e),
                )],
            })?;
        Ok(d)
    }
}
