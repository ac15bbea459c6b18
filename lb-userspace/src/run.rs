//! `lb run`: set up the data plane from a config and serve until told to stop.

use crate::{
    config::{self, Config, ConfigError},
    dataplane::{self, DataPlane, DataPlaneError},
    preflight::{self, PreflightError},
};
use lb_common::settings::Settings;
use std::path::Path;
use tokio::signal::unix::{signal, SignalKind};
use tracing::info;

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
    let mut dp = DataPlane::load(&config.pin_dir())?;
    dp.sync_services(&config.services)?;
    dp.write_settings(Settings::default())?;
    Ok(dp)
}

/// Runs the daemon on the config at `path` until SIGTERM or SIGINT.
pub async fn run(path: &Path) -> Result<(), RunError> {
    let config = config::load(path)?;
    let mut term = signal(SignalKind::terminate()).map_err(RunError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(RunError::Signals)?;

    let mut dp = prepare(&config)?;
    let mode = dp.attach(&config.xdp.interface, config.xdp.mode, config.xdp.generic_fallback)?;
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

    let signal = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    info!(signal, "stopping");
    // Dropping the program detaches it; pinned maps stay for the next start.
    drop(dp);
    info!(interface = %config.xdp.interface, "XDP detached");
    Ok(())
}
