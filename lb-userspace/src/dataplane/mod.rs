//! The XDP data plane: the only module that loads the program and writes BPF maps.
//!
//! Everything else hands it a desired state (the services of a [`Config`]); it makes the
//! maps match. Maps are pinned under the instance's pin directory so `bpftool` can inspect
//! them and a restarted daemon picks them up again.

mod batch;
pub mod bench;
pub mod decap;
mod flows;
mod l4;
mod object;
pub mod pins;
pub mod stats;
pub mod testrun;

use crate::config::{AttachMode, Config, Service};
use crate::maglev::MaglevError;
use aya::{
    maps::{Array, Map, MapData, MapError, PerCpuArray},
    programs::{ProgramError, Xdp, XdpMode},
    Ebpf, EbpfLoader,
};
use lb_common::{maps as names, settings::Settings, stats::VipStats, vip::VipKey};
use std::{
    collections::HashMap as StdHashMap,
    net::IpAddr,
    os::fd::{AsFd, BorrowedFd},
    path::{Path, PathBuf},
};

pub use l4::{L2Addr, L2Map};
pub use object::{xdp_object, ObjectError, OBJECT_ENV};

/// Name of the XDP entry point in the object.
pub const PROGRAM: &str = "lb_xdp";
/// The backend-side decapsulation program (`lb decap`).
pub const DECAP_PROGRAM: &str = "lb_decap";
/// The do-nothing program the benchmark measures as its baseline.
pub const TRIVIAL_PROGRAM: &str = "xdp_pass_trivial";

/// Why the data plane could not be set up or updated.
#[derive(Debug, thiserror::Error)]
pub enum DataPlaneError {
    /// The binary carries no usable object.
    #[error(transparent)]
    Object(#[from] ObjectError),
    /// The pin directory could not be created.
    #[error("cannot create pin directory {}: {source}", path.display())]
    PinDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The kernel refused the object (verifier, map creation, pinning).
    #[error("loading the XDP object failed: {0}")]
    Load(#[source] aya::EbpfError),
    /// A map the program must have is missing from the object.
    #[error("the XDP object has no map {0:?} (built from another version?)")]
    MissingMap(&'static str),
    /// The program is missing from the object or could not be prepared.
    #[error("XDP program {PROGRAM:?}: {0}")]
    Program(#[source] ProgramError),
    /// A Maglev table could not be built (config validation should have caught it).
    #[error("service {service}: {source}")]
    Maglev {
        /// The service.
        service: String,
        /// Why.
        source: MaglevError,
    },
    /// The number of CPUs (for per-CPU values) could not be determined.
    #[error("cannot size per-CPU values: {0}")]
    Cpus(#[source] std::io::Error),
    /// More VIPs or backends than the maps hold.
    #[error("too many {what}: at most {max}")]
    Full {
        /// "VIPs" or "backends".
        what: &'static str,
        /// The map's capacity.
        max: u32,
    },
    /// A map read or write failed.
    #[error("map {map}: {source}")]
    Map {
        /// Map name.
        map: &'static str,
        /// The aya error.
        source: MapError,
    },
    /// A pin of an earlier run could not be removed or created.
    #[error("pin {}: {source}", path.display())]
    Pin {
        /// The pin.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The XDP link cannot be left attached (only `bpf_link` attachments can be pinned).
    #[error("XDP on {interface} cannot be left attached: {why}")]
    KeepAttached {
        /// The interface.
        interface: String,
        /// Why.
        why: String,
    },
    /// Attaching failed in every mode that was allowed.
    #[error("{}", attach_message(interface, tried))]
    Attach {
        /// The interface.
        interface: String,
        /// Each mode tried, with the kernel's answer.
        tried: Vec<(AttachMode, String)>,
    },
}

fn attach_message(interface: &str, tried: &[(AttachMode, String)]) -> String {
    let mut msg = format!("XDP attach to {interface} refused:");
    for (mode, why) in tried {
        msg.push_str(&format!(" {} mode: {why};", mode.as_str()));
    }
    if tried.len() == 1 && tried[0].0 == AttachMode::Native {
        msg.push_str(
            " the driver may lack native XDP: set xdp.mode = \"generic\" or xdp.generic_fallback = true",
        );
    } else {
        msg.pop();
    }
    msg
}

/// A typed, writable handle to one of the object's maps. A function of `ebpf` alone, not
/// of the whole [`DataPlane`], so callers keep using its other fields meanwhile.
fn typed_mut<'a, M>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<M, DataPlaneError>
where
    M: TryFrom<&'a mut Map, Error = MapError>,
{
    ebpf.map_mut(name)
        .ok_or(DataPlaneError::MissingMap(name))?
        .try_into()
        .map_err(map_err(name))
}

/// A typed, read-only handle to one of the object's maps (see [`typed_mut`]).
fn typed<'a, M>(ebpf: &'a Ebpf, name: &'static str) -> Result<M, DataPlaneError>
where
    M: TryFrom<&'a Map, Error = MapError>,
{
    ebpf.map(name)
        .ok_or(DataPlaneError::MissingMap(name))?
        .try_into()
        .map_err(map_err(name))
}

fn map_err(map: &'static str) -> impl FnOnce(MapError) -> DataPlaneError {
    move |source| DataPlaneError::Map { map, source }
}

/// A loaded XDP program with its pinned maps.
pub struct DataPlane {
    ebpf: Ebpf,
    pin_dir: PathBuf,
    attached: Option<(String, AttachMode, aya::programs::xdp::XdpLinkId)>,
    /// Stable ids: a VIP keeps its id (stats index, table slots) across syncs and restarts.
    vip_ids: StdHashMap<VipKey, u32>,
    /// Stable backend indexes, so conntrack entries stay valid across syncs and restarts.
    backend_ids: StdHashMap<IpAddr, u32>,
    /// The table last written per VIP, to skip rewriting unchanged tables.
    tables: StdHashMap<VipKey, Vec<u32>>,
    /// `[l4]` settings the next sync uses (`ipip` sources).
    l4: crate::config::L4Config,
    /// Conntrack timeouts in jiffies, copied into every L4 VIP's meta.
    tcp_timeout_jiffies: u32,
    udp_timeout_jiffies: u32,
}

impl DataPlane {
    /// Loads the embedded object, creating or reusing the maps pinned in `pin_dir`.
    pub fn load(pin_dir: &Path) -> Result<Self, DataPlaneError> {
        Self::load_object(&xdp_object()?, pin_dir)
    }

    /// Loads `object` (an ELF BPF object), pinning its maps in `pin_dir`.
    pub fn load_object(object: &[u8], pin_dir: &Path) -> Result<Self, DataPlaneError> {
        Self::load_object_with(object, pin_dir, names::CONNTRACK_DEFAULT_ENTRIES)
    }

    /// Loads the embedded object with a conntrack table of `conntrack_size` entries (an
    /// already pinned table keeps the size it was created with).
    pub fn load_with(pin_dir: &Path, conntrack_size: u32) -> Result<Self, DataPlaneError> {
        Self::load_object_with(&xdp_object()?, pin_dir, conntrack_size)
    }

    /// [`DataPlane::load_object`] with a conntrack size.
    pub fn load_object_with(
        object: &[u8],
        pin_dir: &Path,
        conntrack_size: u32,
    ) -> Result<Self, DataPlaneError> {
        std::fs::create_dir_all(pin_dir).map_err(|source| DataPlaneError::PinDir {
            path: pin_dir.to_path_buf(),
            source,
        })?;
        // Pins of a build with another map layout would be misread by this program:
        // replace them (their flows are lost, which a restart of that build loses anyway).
        let stale = pins::mismatches(object, pin_dir);
        if !stale.is_empty() {
            let list: Vec<String> = stale.iter().map(ToString::to_string).collect();
            tracing::warn!(
                pin_dir = %pin_dir.display(),
                "pinned maps were made by an lb build with another map layout ({}); replacing them: \
                 established L4 flows are re-picked",
                list.join("; ")
            );
            pins::remove_maps(pin_dir).map_err(|source| DataPlaneError::Pin {
                path: pin_dir.to_path_buf(),
                source,
            })?;
        }
        let paths: Vec<(&'static str, PathBuf)> =
            names::ALL.iter().map(|&n| (n, pin_dir.join(n))).collect();
        let mut loader = EbpfLoader::new();
        for (name, path) in &paths {
            loader.map_pin_path(name, path.as_path());
        }
        // Each family has its own table of this size.
        loader.map_max_entries(names::CONNTRACK, conntrack_size);
        loader.map_max_entries(names::CONNTRACK4, conntrack_size);
        let mut ebpf = loader.load(object).map_err(DataPlaneError::Load)?;
        let prog: &mut Xdp = ebpf
            .program_mut(PROGRAM)
            .ok_or(DataPlaneError::Program(ProgramError::NotLoaded))?
            .try_into()
            .map_err(DataPlaneError::Program)?;
        prog.load().map_err(DataPlaneError::Program)?;
        for &n in names::ALL {
            if ebpf.map(n).is_none() {
                return Err(DataPlaneError::MissingMap(n));
            }
        }
        let mut dp = Self {
            ebpf,
            pin_dir: pin_dir.to_path_buf(),
            attached: None,
            vip_ids: StdHashMap::new(),
            backend_ids: StdHashMap::new(),
            tables: StdHashMap::new(),
            l4: crate::config::L4Config::default(),
            tcp_timeout_jiffies: 0,
            udp_timeout_jiffies: 0,
        };
        dp.adopt_pinned_ids()?;
        Ok(dp)
    }

    /// The directory the maps are pinned in.
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// The program's file descriptor (for BPF_PROG_TEST_RUN).
    pub fn program_fd(&self) -> Result<BorrowedFd<'_>, DataPlaneError> {
        let prog: &Xdp = self
            .ebpf
            .program(PROGRAM)
            .ok_or(DataPlaneError::Program(ProgramError::NotLoaded))?
            .try_into()
            .map_err(DataPlaneError::Program)?;
        Ok(prog.fd().map_err(DataPlaneError::Program)?.as_fd())
    }

    /// Makes the maps hold exactly `services`, with no link-layer addresses known: `pass`
    /// VIPs work, L4 backends count as unreachable (down). See [`DataPlane::sync`].
    pub fn sync_services(&mut self, services: &[Service]) -> Result<(), DataPlaneError> {
        self.sync(services, &L2Map::new())
    }

    /// Writes the XDP program's run-time settings.
    pub fn write_settings(&mut self, settings: Settings) -> Result<(), DataPlaneError> {
        let mut arr: Array<&mut MapData, Settings> = typed_mut(&mut self.ebpf, names::SETTINGS)?;
        arr.set(0, settings, 0).map_err(map_err(names::SETTINGS))
    }

    /// Attaches to `interface` in `mode`, falling back to generic only when `fallback` is set.
    pub fn attach(
        &mut self,
        interface: &str,
        mode: AttachMode,
        fallback: bool,
    ) -> Result<AttachMode, DataPlaneError> {
        let prog: &mut Xdp = self
            .ebpf
            .program_mut(PROGRAM)
            .ok_or(DataPlaneError::Program(ProgramError::NotLoaded))?
            .try_into()
            .map_err(DataPlaneError::Program)?;
        let mut modes = vec![mode];
        if fallback && mode == AttachMode::Native {
            modes.push(AttachMode::Generic);
        }
        // An lb stopped for upgrade left its link pinned: replace its program atomically
        // (bpf_link_update), so packets never meet an interface without one.
        let pin = pins::link_pin(&self.pin_dir, interface, mode);
        for other in pins::other_links(&self.pin_dir, &pin) {
            tracing::warn!(pin = %other.display(), "removing an XDP link an earlier lb left on another interface or mode (detaches it)");
            std::fs::remove_file(&other).map_err(|source| DataPlaneError::Pin {
                path: other.clone(),
                source,
            })?;
        }
        if pin.exists() {
            match aya::programs::links::PinnedLink::from_pin(&pin)
                .map_err(|e| error_chain(&e))
                .and_then(|p| {
                    aya::programs::xdp::XdpLink::try_from(aya::programs::links::FdLink::from(p))
                        .map_err(|e| error_chain(&e))
                })
                .and_then(|link| prog.attach_to_link(link).map_err(|e| error_chain(&e)))
            {
                Ok(link) => {
                    // The link is ours now (held by our fd); the pin would outlive us.
                    let _ = std::fs::remove_file(&pin);
                    tracing::info!(
                        interface,
                        mode = mode.as_str(),
                        "took over the XDP program an earlier lb left attached; its flows continue"
                    );
                    self.attached = Some((interface.to_string(), mode, link));
                    return Ok(mode);
                }
                Err(why) => {
                    tracing::warn!(pin = %pin.display(), error = %why, "cannot take over the pinned XDP link; replacing it");
                    std::fs::remove_file(&pin).map_err(|source| DataPlaneError::Pin {
                        path: pin.clone(),
                        source,
                    })?;
                }
            }
        }
        let mut tried = Vec::new();
        for m in modes {
            let xdp_mode = match m {
                AttachMode::Native => XdpMode::Driver,
                AttachMode::Generic => XdpMode::Skb,
            };
            match prog.attach(interface, xdp_mode) {
                Ok(link) => {
                    self.attached = Some((interface.to_string(), m, link));
                    return Ok(m);
                }
                Err(e) => tried.push((m, error_chain(&e))),
            }
        }
        Err(DataPlaneError::Attach {
            interface: interface.to_string(),
            tried,
        })
    }

    /// Where the program is attached, if it is.
    pub fn attached(&self) -> Option<(&str, AttachMode)> {
        self.attached.as_ref().map(|(i, m, _)| (i.as_str(), *m))
    }

    /// Whether an earlier `lb` stopped for upgrade left an XDP link pinned for this
    /// instance (a start takes it over with [`DataPlane::attach`]).
    pub fn has_pinned_link(&self) -> bool {
        std::fs::read_dir(&self.pin_dir).is_ok_and(|rd| {
            rd.filter_map(Result::ok).any(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with(pins::LINK_PREFIX))
            })
        })
    }

    /// Stop for upgrade: pins the XDP link so the program stays attached, with its pinned
    /// maps, after this process exits; the next start takes it over. Returns the pin, or
    /// `None` when the program is not attached (a VRRP backup).
    pub fn leave_attached(&mut self) -> Result<Option<PathBuf>, DataPlaneError> {
        let Some((interface, mode, id)) = self.attached.take() else {
            return Ok(None);
        };
        let prog: &mut Xdp = self
            .ebpf
            .program_mut(PROGRAM)
            .ok_or(DataPlaneError::Program(ProgramError::NotLoaded))?
            .try_into()
            .map_err(DataPlaneError::Program)?;
        let link = prog.take_link(id).map_err(DataPlaneError::Program)?;
        let fd = aya::programs::links::FdLink::try_from(link).map_err(|e| {
            DataPlaneError::KeepAttached {
                interface: interface.clone(),
                why: format!(
                    "{} (the kernel attached it without bpf_link)",
                    error_chain(&e)
                ),
            }
        })?;
        let pin = pins::link_pin(&self.pin_dir, &interface, mode);
        fd.pin(&pin).map_err(|e| DataPlaneError::KeepAttached {
            interface,
            why: error_chain(&e),
        })?;
        Ok(Some(pin))
    }

    /// Detaches the program (a VRRP backup); it stays loaded and the maps stay pinned, so
    /// the next takeover only pays for the attach.
    pub fn detach(&mut self) -> Result<(), DataPlaneError> {
        let Some((_, _, link)) = self.attached.take() else {
            return Ok(());
        };
        let prog: &mut Xdp = self
            .ebpf
            .program_mut(PROGRAM)
            .ok_or(DataPlaneError::Program(ProgramError::NotLoaded))?
            .try_into()
            .map_err(DataPlaneError::Program)?;
        prog.detach(link).map_err(DataPlaneError::Program)
    }

    /// The fd of another program of the object (`lb_decap`, `xdp_pass_trivial`), loading
    /// it first if needed; for BPF_PROG_TEST_RUN.
    pub fn extra_program_fd(&mut self, name: &str) -> Result<BorrowedFd<'_>, DataPlaneError> {
        let prog: &mut Xdp = self
            .ebpf
            .program_mut(name)
            .ok_or(DataPlaneError::Program(ProgramError::NotLoaded))?
            .try_into()
            .map_err(DataPlaneError::Program)?;
        if prog.fd().is_err() {
            prog.load().map_err(DataPlaneError::Program)?;
        }
        Ok(prog.fd().map_err(DataPlaneError::Program)?.as_fd())
    }

    /// Per-VIP counters summed over CPUs, indexed by VIP id.
    pub fn vip_stats(&self, id: u32) -> Result<VipStats, DataPlaneError> {
        let arr: PerCpuArray<&MapData, VipStats> = typed(&self.ebpf, names::VIP_STATS)?;
        stats::sum_vip(&arr, id).map_err(map_err(names::VIP_STATS))
    }

    /// Drop counters summed over CPUs, indexed by [`lb_common::stats::DropReason`].
    pub fn drop_stats(&self) -> Result<Vec<u64>, DataPlaneError> {
        let arr: PerCpuArray<&MapData, u64> = typed(&self.ebpf, names::DROPS)?;
        stats::sum_drops(&arr).map_err(map_err(names::DROPS))
    }
}

/// The VIP map key of a service.
pub fn vip_key(svc: &Service) -> VipKey {
    let proto = svc.vip.protocol.number();
    match svc.vip.addr {
        IpAddr::V4(a) => VipKey::v4(a.octets(), svc.vip.port, proto),
        IpAddr::V6(a) => VipKey::v6(a.octets(), svc.vip.port, proto),
    }
}

/// Opens an instance's pinned map by name (for `lb stats` while the daemon runs).
pub fn open_pinned(config: &Config, name: &'static str) -> Result<Map, DataPlaneError> {
    let path = config.pin_dir().join(name);
    let data = MapData::from_pin(&path).map_err(map_err(name))?;
    Map::from_map_data(data).map_err(map_err(name))
}

/// Renders an error with its sources, the way the kernel's answer is worth reading.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}
