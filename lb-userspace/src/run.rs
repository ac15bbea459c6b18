//! `lb run`: set up the data plane from a config and serve until told to stop.

use crate::{
    config::{self, Config, ConfigError},
    dataplane::{self, DataPlane, DataPlaneError},
    preflight::{self, PreflightError},
};
use std::{net::IpAddr, path::Path, time::Duration};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{info, warn};

/// How long a sync waits for backends' neighbour entries to resolve.
pub const NEIGH_TIMEOUT: Duration = Duration::from_secs(3);

/// Why `lb run` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The config file is missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The machine is not ready (privileges, interface, bpffs).
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    /// Loading, pinning, writing maps or attaching failed.
    #[error(transparent)]
    DataPlane(#[from] DataPlaneError),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
}

/// Validates the machine for `config` and loads the data plane, without attaching.
pub fn prepare(config: &Config) -> Result<DataPlane, RunError> {
    dataplane::xdp_object().map_err(DataPlaneError::from)?;
    preflight::check_privileges()?;
    preflight::check_interface(&config.xdp.interface)?;
    preflight::check_bpffs(&config.xdp.bpffs)?;
    let mut dp = DataPlane::load_with(&config.pin_dir(), config.l4.conntrack_size)?;
    sync_l4(&mut dp, config)?;
    Ok(dp)
}

/// Resolves the L4 backends' Ethernet addresses and makes the maps match `config`.
/// Backends that do not resolve are logged and left without new flows.
pub fn sync_l4(dp: &mut DataPlane, config: &Config) -> Result<(), RunError> {
    let mut backends: Vec<IpAddr> = config
        .services
        .iter()
        .filter(|s| s.mode.is_l4())
        .flat_map(|s| s.backends.iter().map(|b| b.addr))
        .collect();
    backends.sort();
    backends.dedup();
    let l2 = if backends.is_empty() {
        dataplane::L2Map::new()
    } else {
        let ifindex = preflight::check_interface(&config.xdp.interface)?;
        let (l2, failed) = crate::neigh::resolve(ifindex, &backends, NEIGH_TIMEOUT);
        for (addr, why) in failed {
            warn!(backend = %addr, error = %why, "backend unreachable; it gets no flows");
        }
        l2
    };
    dp.configure_l4(&config.l4)?;
    dp.sync(&config.services, &l2)?;
    Ok(())
}

/// SIGHUP: re-reads the config and applies the L4 services. An invalid file, or one that
/// changes what only a restart can (instance, XDP attachment, conntrack size), leaves the
/// running config in place.
fn reload(path: &Path, current: &Config, dp: &mut DataPlane) -> Option<Config> {
    let new = match config::load(path) {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "reload refused; keeping the running config");
            return None;
        }
    };
    if new.instance != current.instance
        || new.xdp != current.xdp
        || new.l4.conntrack_size != current.l4.conntrack_size
    {
        warn!("reload refused: instance, [xdp] and l4.conntrack_size need a restart; keeping the running config");
        return None;
    }
    match tokio::task::block_in_place(|| sync_l4(dp, &new)) {
        Ok(()) => {
            info!(services = new.services.len(), "config reloaded");
            Some(new)
        }
        Err(e) => {
            warn!(error = %e, "reload failed while writing the data plane; restoring the running config");
            if let Err(e) = tokio::task::block_in_place(|| sync_l4(dp, current)) {
                warn!(error = %e, "restoring the running config failed");
            }
            None
        }
    }
}

/// Runs the daemon on the config at `path` until SIGTERM or SIGINT.
pub async fn run(path: &Path) -> Result<(), RunError> {
    let mut config = config::load(path)?;
    let mut term = signal(SignalKind::terminate()).map_err(RunError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(RunError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(RunError::Signals)?;

    let mut dp = prepare(&config)?;
    let mode = dp.attach(
        &config.xdp.interface,
        config.xdp.mode,
        config.xdp.generic_fallback,
    )?;
    info!(
        instance = %config.instance,
        interface = %config.xdp.interface,
        mode = mode.as_str(),
        pin_dir = %dp.pin_dir().display(),
        services = config.services.len(),
        "XDP attached; serving"
    );
    for svc in &config.services {
        info!(service = %svc.name, vip = %svc.vip, mode = svc.mode.as_str(), "service");
    }

    let signal = loop {
        tokio::select! {
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
            _ = hup.recv() => {
                info!("SIGHUP: reloading the config");
                if let Some(new) = reload(path, &config, &mut dp) {
                    config = new;
                }
            }
        }
    };
    info!(signal, "stopping");
    // Dropping the program detaches it; pinned maps stay for the next start.
    drop(dp);
    info!(interface = %config.xdp.interface, "XDP detached");
    Ok(())
}
