//! `lb run`: set up the data plane from a config and serve until told to stop.
//!
//! This task owns the data plane: it alone calls into [`DataPlane`]. Health checks and
//! admin commands change server statuses in [`Control`], which publishes them; this loop
//! turns each publication into one map sync.

use crate::{
    admin::{AdminHandler, AdminOptions, AdminServer, AdminServerError, VipFilter},
    config::{self, Config, ConfigError},
    control::{self, Control, L4State, PlaneRequest, ServerStatus},
    dataplane::{self, DataPlane, DataPlaneError, L2Map},
    http_frontends::Frontends,
    preflight::{self, PreflightError},
    vrrp::{self, Membership, Role, RoleEvent, VrrpError},
};
use std::{fmt::Write, net::IpAddr, path::Path, sync::Arc, time::Duration};
use tokio::{
    signal::unix::{signal, SignalKind},
    sync::watch,
};
use tracing::{info, warn};

/// How long a sync waits for backends' neighbour entries to resolve.
pub const NEIGH_TIMEOUT: Duration = Duration::from_secs(3);
/// Most conntrack entries `show flows` prints.
pub const SHOW_FLOWS_LIMIT: usize = 1000;

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
    /// An HTTP service's listener could not be opened.
    #[error(transparent)]
    Listen(#[from] crate::http_frontends::ListenError),
    /// The admin socket could not be opened.
    #[error(transparent)]
    Admin(#[from] AdminServerError),
    /// VRRP membership could not start.
    #[error(transparent)]
    Vrrp(#[from] VrrpError),
    /// `[global] user`/`group` could not be switched to.
    #[error(transparent)]
    Privileges(#[from] crate::privdrop::PrivDropError),
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
    dp.configure_l4(&config.l4)?;
    Ok(dp)
}

/// Resolves the L4 backends' Ethernet addresses. Backends that do not resolve are logged
/// and get no flows until a reload resolves them.
pub fn resolve_l2(config: &Config) -> Result<L2Map, RunError> {
    let backends = config.l4_backends();
    if backends.is_empty() {
        return Ok(L2Map::new());
    }
    let ifindex = preflight::check_interface(&config.xdp.interface)?;
    let (l2, failed) = crate::neigh::resolve(ifindex, &backends, NEIGH_TIMEOUT);
    for (addr, why) in failed {
        warn!(backend = %addr, error = %why, "backend unreachable; it gets no flows");
    }
    Ok(l2)
}

/// Makes the maps match `config` as the server statuses allow: draining or NOLB servers
/// keep their flows but get no new ones; DOWN or maintenance servers' flows are re-picked.
pub fn apply_l4(
    dp: &mut DataPlane,
    config: &Config,
    l2: &L2Map,
    statuses: &[Vec<ServerStatus>],
) -> Result<(), RunError> {
    let (services, down) = control::effective_l4(config, statuses);
    let reachable: L2Map = l2
        .iter()
        .filter(|(a, _)| !down.contains(a))
        .map(|(a, l)| (*a, *l))
        .collect();
    dp.sync(&services, &reachable)?;
    Ok(())
}

/// `[global] user`/`group`: called once setup is done (maps pinned, XDP attached or
/// membership started, listeners bound, admin socket open). The pin directory and the
/// VRRP status directory are handed to the user first: a stop for upgrade pins the XDP
/// link there, and membership rewrites its status file.
fn drop_privileges(config: &Config, run_as: &config::global::RunAs) -> Result<(), RunError> {
    let t = crate::privdrop::target(run_as)?;
    let status_dir = vrrp::status_path(&config.instance)
        .parent()
        .map(Path::to_path_buf);
    for dir in std::iter::once(config.pin_dir()).chain(status_dir) {
        if dir.exists() {
            if let Err(e) = std::os::unix::fs::chown(&dir, Some(t.uid), Some(t.gid)) {
                warn!(dir = %dir.display(), error = %e, "cannot hand the directory to [global] user");
            }
        }
    }
    tokio::task::block_in_place(|| crate::privdrop::drop_all_threads(t))?;
    info!(
        user = %run_as.user,
        uid = t.uid,
        gid = t.gid,
        caps = "cap_net_bind_service,cap_net_admin,cap_net_raw,cap_bpf",
        "privileges dropped"
    );
    Ok(())
}

/// Everything the run loop owns.
struct Daemon {
    path: std::path::PathBuf,
    config: Config,
    dp: DataPlane,
    l2: L2Map,
    /// Follows backend MAC changes after start (see `neigh::Watcher`).
    neigh: Option<crate::neigh::Watcher>,
    control: Arc<Control>,
    http: Frontends,
    stop: watch::Receiver<bool>,
}

impl Daemon {
    /// SIGHUP or `lb reload`: validate the new file, keep the running config when it is
    /// invalid or changes what only a restart can, else apply it.
    fn reload(&mut self) -> Result<String, String> {
        let new = config::load(&self.path).map_err(|e| {
            warn!(error = %e, "reload refused; keeping the running config");
            format!("reload refused, running config kept: {e}")
        })?;
        if new.instance != self.config.instance
            || new.xdp != self.config.xdp
            || new.l4.conntrack_size != self.config.l4.conntrack_size
            || new.admin != self.config.admin
            || new.global != self.config.global
        {
            let msg = "reload refused: instance, [global], [xdp], [admin] and l4.conntrack_size need a restart; running config kept";
            warn!("{msg}");
            return Err(msg.into());
        }
        // Everything that can fail comes first: new listeners, neighbour resolution.
        let staged = self.http.stage(&new).map_err(|e| {
            warn!(error = %e, "reload refused; keeping the running config");
            format!("reload refused, running config kept: {e}")
        })?;
        let l2 = tokio::task::block_in_place(|| resolve_l2(&new)).map_err(|e| e.to_string())?;
        let old = std::mem::replace(&mut self.config, new);
        let old_l2 = std::mem::replace(&mut self.l2, l2);
        self.control
            .reconfigure(Arc::new(self.config.clone()), staged.handles(), &self.stop);
        let applied = self
            .dp
            .configure_l4(&self.config.l4)
            .map_err(RunError::from)
            .and_then(|()| {
                apply_l4(
                    &mut self.dp,
                    &self.config,
                    &self.l2,
                    &self.control.statuses(),
                )
            });
        if let Err(e) = applied {
            warn!(error = %e, "reload failed while writing the data plane; restoring the running config");
            drop(staged);
            self.config = old;
            self.l2 = old_l2;
            self.control.reconfigure(
                Arc::new(self.config.clone()),
                self.http.handles(),
                &self.stop,
            );
            let _ = self.dp.configure_l4(&self.config.l4);
            if let Err(e) = apply_l4(
                &mut self.dp,
                &self.config,
                &self.l2,
                &self.control.statuses(),
            ) {
                warn!(error = %e, "restoring the running config failed");
            }
            return Err(format!("reload failed, running config restored: {e}"));
        }
        let http = self.http.commit(staged);
        if let Some(w) = &self.neigh {
            w.update_for(&self.config, &self.l2);
        }
        let mut msg = format!("config reloaded: {} services", self.config.services.len());
        if !http.is_empty() {
            msg.push_str("; ");
            msg.push_str(&http);
        }
        info!("{msg}");
        Ok(msg)
    }

    /// The neighbour watcher saw backends' Ethernet addresses change (a replaced NIC, a
    /// backend that resolved late): rewrite the L4 maps with them.
    fn on_l2(&mut self, l2: L2Map) {
        self.l2.extend(l2);
        match apply_l4(
            &mut self.dp,
            &self.config,
            &self.l2,
            &self.control.statuses(),
        ) {
            Ok(()) => info!("L4 maps updated with new backend link-layer addresses"),
            Err(e) => warn!(error = %e, "updating the L4 maps with new backend addresses failed"),
        }
    }

    /// A new server status publication: rewrite the L4 maps.
    fn on_status(&mut self, st: &L4State) {
        let started = std::time::Instant::now();
        match apply_l4(&mut self.dp, &self.config, &self.l2, &st.servers) {
            Ok(()) => {
                if let Some(t) = st.decided_at {
                    info!(
                        latency_us = t.elapsed().as_micros() as u64,
                        sync_us = started.elapsed().as_micros() as u64,
                        generation = st.generation,
                        "XDP maps updated after a health decision"
                    );
                }
            }
            Err(e) => warn!(error = %e, "updating the L4 maps failed"),
        }
    }

    /// Attaches XDP (blocking for the few ms the kernel needs, off the async workers).
    fn attach(&mut self) -> Result<(), RunError> {
        let x = self.config.xdp.clone();
        let mode = tokio::task::block_in_place(|| {
            self.dp.attach(&x.interface, x.mode, x.generic_fallback)
        })?;
        info!(interface = %x.interface, mode = mode.as_str(), "XDP attached");
        Ok(())
    }

    /// A VRRP role change: XDP is attached while any instance is MASTER. Each instance
    /// adds and removes its own VIPs; the maps stay pinned throughout, so conntrack and
    /// counters survive a failover.
    fn on_role(&mut self, ev: RoleEvent, masters: &mut std::collections::HashSet<String>) {
        // L4 VIPs must be in XDP's hands before the VIP appears (the local stack would
        // reset their flows); other VIPs are answered by the stack anyway, so their
        // takeover does not wait for the attach.
        let xdp_first = self.config.services.iter().any(|s| s.mode.is_l4());
        let RoleEvent {
            instance,
            role,
            done,
        } = ev;
        let mut done = Some(done);
        match role {
            Role::Master => {
                masters.insert(instance);
                if !xdp_first {
                    if let Some(d) = done.take() {
                        let _ = d.send(());
                    }
                }
                if self.dp.attached().is_none() {
                    if let Err(e) = self.attach() {
                        tracing::error!("XDP attach on takeover: {e}");
                    }
                }
            }
            Role::Backup => {
                masters.remove(&instance);
                if masters.is_empty() && self.dp.attached().is_some() {
                    match tokio::task::block_in_place(|| self.dp.detach()) {
                        Ok(()) => {
                            info!(interface = %self.config.xdp.interface, "XDP detached (no instance is MASTER)")
                        }
                        Err(e) => tracing::error!("XDP detach: {e}"),
                    }
                }
            }
        }
        if let Some(d) = done {
            let _ = d.send(());
        }
    }

    fn show_flows(&self, filter: Option<VipFilter>) -> Result<String, String> {
        let flows = self.dp.flows(SHOW_FLOWS_LIMIT).map_err(|e| e.to_string())?;
        let mut out = String::from("# client vip proto backend_id\n");
        for (k, v) in flows {
            let (src, dst) = if k.family == lb_common::vip::FAMILY_V4 {
                (
                    IpAddr::from([k.src[0], k.src[1], k.src[2], k.src[3]]),
                    IpAddr::from([k.dst[0], k.dst[1], k.dst[2], k.dst[3]]),
                )
            } else {
                (IpAddr::from(k.src), IpAddr::from(k.dst))
            };
            if let Some(f) = filter {
                if f.addr != dst || f.port.is_some_and(|p| p != k.dport) {
                    continue;
                }
            }
            let proto = if k.proto == lb_common::vip::PROTO_TCP {
                "tcp"
            } else {
                "udp"
            };
            let _ = writeln!(
                out,
                "{src}:{} {dst}:{} {proto} {}",
                k.sport, k.dport, v.backend
            );
        }
        Ok(out)
    }
}

/// A reload of everything: the daemon's part, then `[[vrrp]]`, whose instances change in
/// place (unchanged ones are not touched, so their role does not flap). Turning VRRP on
/// or off changes who attaches XDP, and needs a restart.
fn reload_with_vrrp(d: &mut Daemon, members: Option<&Membership>) -> Result<String, String> {
    if let Ok(new) = config::load(&d.path) {
        if new.vrrp.is_empty() != d.config.vrrp.is_empty() {
            let msg = "reload refused: adding the first or removing the last [[vrrp]] instance needs a restart; running config kept";
            warn!("{msg}");
            return Err(msg.into());
        }
    }
    let msg = d.reload()?;
    Ok(match members {
        Some(m) => {
            m.set_xdp_first(d.config.services.iter().any(|s| s.mode.is_l4()));
            format!("{msg}; {}", m.reconfigure(&d.config.vrrp))
        }
        None => msg,
    })
}

/// Runs the daemon on the config at `path` until SIGTERM or SIGINT.
pub async fn run(path: &Path) -> Result<(), RunError> {
    let config = config::load(path)?;
    let mut term = signal(SignalKind::terminate()).map_err(RunError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(RunError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(RunError::Signals)?;
    let mut usr2 = signal(SignalKind::user_defined2()).map_err(RunError::Signals)?;

    let mut dp = prepare(&config)?;
    let l2 = tokio::task::block_in_place(|| resolve_l2(&config))?;
    let (neigh, mut l2_rx) = crate::neigh::Watcher::for_config(&config, &l2);
    let http = Frontends::start(&config)?;
    let (control, mut l4_rx, mut plane_rx) = Control::new(Arc::new(config.clone()), http.handles());
    apply_l4(&mut dp, &config, &l2, &control.statuses())?;
    let (stop_tx, stop) = watch::channel(false);
    let admin = AdminServer::bind(
        &config.admin.socket,
        AdminOptions {
            mode: config.admin.mode,
            ..AdminOptions::default()
        },
    )?;
    tokio::spawn(admin.serve(Arc::clone(&control) as Arc<dyn AdminHandler>, stop.clone()));
    control.start_checks(stop.clone());

    // Without VRRP this node always serves; with it, XDP follows the MASTER role.
    let (role_tx, mut roles) = tokio::sync::mpsc::channel::<RoleEvent>(16);
    let mut members = if config.vrrp.is_empty() {
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
            admin = %config.admin.socket.display(),
            services = config.services.len(),
            "XDP attached; serving"
        );
        None
    } else {
        // An lb stopped for upgrade left XDP attached: adopt it now, so that it is ours
        // to detach should this node start as BACKUP.
        if dp.has_pinned_link() {
            dp.attach(
                &config.xdp.interface,
                config.xdp.mode,
                config.xdp.generic_fallback,
            )?;
        }
        let m = Membership::start(
            &config.vrrp,
            Some(vrrp::status_path(&config.instance)),
            role_tx,
            control.service_availability(),
            config.services.iter().any(|s| s.mode.is_l4()),
        )
        .await?;
        control.set_vrrp_reporter(m.reporter());
        info!(
            instance = %config.instance,
            instances = config.vrrp.len(),
            pin_dir = %dp.pin_dir().display(),
            admin = %config.admin.socket.display(),
            services = config.services.len(),
            "VRRP membership started; XDP attaches while MASTER"
        );
        Some(m)
    };
    for svc in &config.services {
        info!(service = %svc.name, vip = %svc.vip, mode = svc.mode.as_str(), "service");
        if let Some(page) = svc
            .http
            .as_ref()
            .and_then(|h| h.stats.as_ref().map(|p| (h, p)))
        {
            let (h, p) = page;
            info!(service = %svc.name, url = %format!("http://{}{}", h.listen, p.uri), metrics = ?p.prometheus_uri, "stats page");
        }
    }
    // The stats page and `show stat` read the state manager, the pinned XDP counters
    // (through their own read-only handles) and the VRRP status.
    let xdp = crate::dataplane::stats::XdpReader::open(dp.pin_dir()).map_err(|e| e.to_string());
    match crate::stats::Sources::new(
        Arc::clone(&control),
        xdp,
        members.as_ref().map(|m| m.reporter()),
    ) {
        Ok(s) => crate::stats::install(s),
        Err(e) => warn!(error = %e, "stats page unavailable: no random bytes for its form token"),
    }

    let mut d = Daemon {
        path: path.to_path_buf(),
        config,
        dp,
        l2,
        neigh,
        control,
        http,
        stop,
    };
    let mut masters = std::collections::HashSet::new();
    let mut stopping = false;
    // SIGUSR2 stops for upgrade: XDP stays attached (its link pinned) with the pinned maps,
    // and the next `lb run` takes it over; no VRRP hand-over (docs/upgrade.md).
    let mut upgrade = false;
    if let Some(run_as) = &d.config.global.run_as {
        drop_privileges(&d.config, run_as)?;
    }
    // The first SIGTERM/SIGINT stops gracefully: a VRRP master sends priority 0 but keeps
    // serving its VIPs until the successor announces itself; a second signal stops at once.
    let signal = loop {
        tokio::select! {
            _ = term.recv() => match members.as_mut() {
                Some(m) if !stopping => { info!(signal = "SIGTERM", "stopping: handing over"); stopping = true; m.stop(); }
                Some(m) => { m.abort(); break "SIGTERM"; }
                None => break "SIGTERM",
            },
            _ = int.recv() => match members.as_mut() {
                Some(m) if !stopping => { info!(signal = "SIGINT", "stopping: handing over"); stopping = true; m.stop(); }
                Some(m) => { m.abort(); break "SIGINT"; }
                None => break "SIGINT",
            },
            Some(ev) = roles.recv() => d.on_role(ev, &mut masters),
            r = async { match members.as_mut() { Some(m) => m.join_next().await, None => std::future::pending().await } }, if stopping => {
                if r.is_none() { break "SIGTERM"; }
            }
            _ = usr2.recv() => {
                info!(signal = "SIGUSR2", "stopping for upgrade: XDP stays attached for the next lb");
                upgrade = true;
                if let Some(m) = members.as_mut() { m.abort(); }
                break "SIGUSR2";
            }
            _ = hup.recv() => {
                info!("SIGHUP: reloading the config");
                let _ = reload_with_vrrp(&mut d, members.as_ref());
            }
            Some(req) = plane_rx.recv() => match req {
                PlaneRequest::Reload(tx) => { let _ = tx.send(reload_with_vrrp(&mut d, members.as_ref())); }
                PlaneRequest::ShowFlows(filter, tx) => { let _ = tx.send(d.show_flows(filter)); }
            },
            Some(l2) = l2_rx.recv() => d.on_l2(l2),
            Ok(()) = l4_rx.changed() => {
                let st = l4_rx.borrow_and_update().clone();
                d.on_status(&st);
            }
        }
    };
    info!(signal, "stopping");
    if let Some(m) = &members {
        m.finish();
    }
    let _ = stop_tx.send(true);
    d.http.stop().await;
    // Dropping the program detaches it unless its link was pinned for an upgrade; pinned
    // maps stay for the next start either way.
    let interface = d.config.xdp.interface.clone();
    let kept = upgrade
        && match tokio::task::block_in_place(|| d.dp.leave_attached()) {
            Ok(Some(pin)) => {
                info!(interface = %interface, pin = %pin.display(), "XDP left attached with its pinned maps; the next lb run takes it over");
                true
            }
            Ok(None) => {
                info!(interface = %interface, "XDP is not attached (VRRP backup); nothing to hand over");
                false
            }
            Err(e) => {
                warn!(error = %e, "cannot leave XDP attached; detaching");
                false
            }
        };
    drop(d);
    if !kept {
        info!(interface = %interface, "XDP detached");
    }
    Ok(())
}
