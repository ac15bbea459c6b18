//! `lb run`: set up the data plane from a config and serve until told to stop.

use crate::{
    config::{self, Config, ConfigError},
    dataplane::{self, DataPlane, DataPlaneError},
    preflight::{self, PreflightError},
    vrrp::{self, Role, VrrpError},
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
    /// VRRP membership could not start.
    #[error(transparent)]
    Vrrp(#[from] VrrpError),
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
    if !config.vrrp.is_empty() {
        return serve_with_membership(&config, dp, &mut term, &mut int).await;
    }
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

/// With `[[vrrp]]` instances: XDP is attached while at least one instance is MASTER and
/// detached when none is (each instance adds and removes its own VIPs). Detaching drops
/// the program; it is loaded again at once in the background, unattached, so the next
/// takeover only pays for the attach. The maps stay pinned throughout, so conntrack and
/// counters survive. The first SIGTERM/SIGINT stops gracefully (a master hands over
/// before it lets go of its VIPs); a second one stops at once.
async fn serve_with_membership(
    config: &Config,
    dp: DataPlane,
    term: &mut tokio::signal::unix::Signal,
    int: &mut tokio::signal::unix::Signal,
) -> Result<(), RunError> {
    type Reload = tokio::task::JoinHandle<Result<DataPlane, RunError>>;
    let (tx, mut events) = tokio::sync::mpsc::channel(16);
    let status = vrrp::status_path(&config.instance);
    let mut members = vrrp::Membership::start(&config.vrrp, Some(status), tx).await?;
    info!(instance = %config.instance, instances = config.vrrp.len(), "VRRP membership started");
    // L4 VIPs must be in XDP's hands before the VIP appears (the local stack would reset
    // their flows); other VIPs are answered by the stack anyway, so their takeover does
    // not wait for the attach (~15 ms on veth).
    let xdp_first = config.services.iter().any(|s| s.mode.is_l4());
    let mut dp = Some(dp);
    let mut reloading: Option<Reload> = None;
    let mut attached = false;
    let mut masters = std::collections::HashSet::new();
    let mut stopping = false;
    loop {
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { break };
                let mut done = Some(ev.done);
                match ev.role {
                    Role::Master => {
                        masters.insert(ev.instance);
                        if !xdp_first {
                            if let Some(d) = done.take() {
                                let _ = d.send(());
                            }
                        }
                        if !attached {
                            if let Some(r) = reloading.take() {
                                match r.await {
                                    Ok(Ok(d)) => dp = Some(d),
                                    Ok(Err(e)) => tracing::error!("reloading XDP: {e}"),
                                    Err(e) => tracing::error!("XDP reload task: {e}"),
                                }
                            }
                            // Loading and attaching block for milliseconds (veth waits for
                            // an RCU grace period): a blocking thread keeps them away from
                            // the instance tasks.
                            let cfg = config.clone();
                            let taken = dp.take();
                            let job = tokio::task::spawn_blocking(move || {
                                let mut d = match taken {
                                    Some(d) => d,
                                    None => prepare(&cfg)?,
                                };
                                let x = &cfg.xdp;
                                let mode = d.attach(&x.interface, x.mode, x.generic_fallback);
                                Ok::<_, RunError>((d, mode))
                            });
                            match job.await {
                                Ok(Ok((d, Ok(mode)))) => {
                                    dp = Some(d);
                                    attached = true;
                                    info!(interface = %config.xdp.interface, mode = mode.as_str(), "XDP attached (MASTER)");
                                }
                                Ok(Ok((d, Err(e)))) => {
                                    dp = Some(d);
                                    tracing::error!("XDP attach on takeover: {e}");
                                }
                                Ok(Err(e)) => tracing::error!("reloading XDP: {e}"),
                                Err(e) => tracing::error!("XDP attach task: {e}"),
                            }
                        }
                    }
                    Role::Backup => {
                        masters.remove(&ev.instance);
                        if attached && masters.is_empty() {
                            let taken = dp.take();
                            let _ = tokio::task::spawn_blocking(move || drop(taken)).await;
                            attached = false;
                            info!(interface = %config.xdp.interface, "XDP detached (no instance is MASTER)");
                            if !stopping {
                                let cfg = config.clone();
                                reloading = Some(tokio::task::spawn_blocking(move || prepare(&cfg)));
                            }
                        }
                    }
                }
                if let Some(d) = done {
                    let _ = d.send(());
                }
            }
            _ = term.recv() => {
                if stopping { members.abort(); break; }
                info!(signal = "SIGTERM", "stopping: handing over");
                stopping = true;
                members.stop();
            }
            _ = int.recv() => {
                if stopping { members.abort(); break; }
                info!(signal = "SIGINT", "stopping: handing over");
                stopping = true;
                members.stop();
            }
            r = members.join_next(), if stopping => {
                if r.is_none() { break; }
            }
        }
    }
    members.finish();
    if let Some(r) = reloading {
        r.abort();
    }
    drop(dp);
    info!(interface = %config.xdp.interface, "stopped");
    Ok(())
}
