//! The admin socket's commands, carried out on the state manager.

use super::{server_count, server_name, Control, PlaneRequest};
use crate::{
    admin::{
        AdminCommand, AdminError, AdminHandler, AdminState, BoxFuture, ForcedHealth, ServerRef,
        Weight,
    },
    health::HealthState,
};
use std::time::Instant;
use tokio::sync::oneshot;

/// Most weight `set weight` accepts (HAProxy's limit).
pub const MAX_WEIGHT: u32 = 256;

impl Control {
    fn find(&self, r: &ServerRef) -> Result<(usize, usize), AdminError> {
        let cfg = self.config();
        let si = cfg
            .services
            .iter()
            .position(|s| s.name == r.service)
            .ok_or(AdminError::NoSuchService)?;
        let svc = &cfg.services[si];
        (0..server_count(svc))
            .find(|&i| server_name(svc, i) == Some(r.server.as_str()))
            .map(|i| (si, i))
            .ok_or(AdminError::NoSuchServer)
    }

    fn set_admin(
        &self,
        r: &ServerRef,
        f: impl FnOnce(AdminState) -> AdminState,
    ) -> Result<String, AdminError> {
        let (si, i) = self.find(r)?;
        let (from, to) = {
            let mut st = self.lock();
            let s = &mut st[si][i];
            let from = s.admin;
            s.admin = f(from);
            if s.admin != from {
                s.since = Instant::now();
            }
            (from, s.admin)
        };
        if from != to {
            tracing::warn!(target: "health", "Server {r} is going {} (admin).", admin_word(to));
            self.publish(None);
        }
        Ok(String::new())
    }

    async fn force_health(&self, r: &ServerRef, h: ForcedHealth) -> Result<String, AdminError> {
        let (si, i) = self.find(r)?;
        let state = match h {
            ForcedHealth::Up => HealthState::Up,
            ForcedHealth::Stopping => HealthState::Nolb,
            ForcedHealth::Down => HealthState::Down,
        };
        let handle = self
            .health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(si, i))
            .map(|c| std::sync::Arc::clone(&c.handle));
        match handle {
            // A checked server: the check task owns the counter; it reports the change
            // back through the normal event path.
            Some(control) => {
                control
                    .force(state)
                    .await
                    .map_err(|e| AdminError::Failed(e.to_string()))?;
            }
            None => {
                {
                    let mut st = self.lock();
                    st[si][i].health = state;
                    st[si][i].since = Instant::now();
                }
                tracing::warn!(target: "health", "Server {r} is {} (forced by admin).", state.as_str());
                self.publish(None);
            }
        }
        Ok(String::new())
    }

    fn set_weight(&self, r: &ServerRef, w: Weight) -> Result<String, AdminError> {
        let (si, i) = self.find(r)?;
        {
            let mut st = self.lock();
            let s = &mut st[si][i];
            let new = match w {
                Weight::Absolute(n) => n,
                Weight::Percent(p) => s.config_weight.saturating_mul(p) / 100,
            };
            if new > MAX_WEIGHT {
                return Err(AdminError::Rejected(format!(
                    "Weight must be between 0 and {MAX_WEIGHT}."
                )));
            }
            s.weight = new;
        }
        self.publish(None);
        Ok(String::new())
    }

    async fn ask_plane(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<String, String>>) -> PlaneRequest,
    ) -> Result<String, AdminError> {
        let (tx, rx) = oneshot::channel();
        self.plane_tx
            .send(make(tx))
            .await
            .map_err(|_| AdminError::Failed("the daemon is stopping".into()))?;
        rx.await
            .map_err(|_| AdminError::Failed("the daemon is stopping".into()))?
            .map_err(AdminError::Failed)
    }
}

fn admin_word(a: AdminState) -> &'static str {
    match a {
        AdminState::Ready => "READY",
        AdminState::Drain => "DRAIN",
        AdminState::Maint => "into maintenance",
    }
}

impl AdminHandler for Control {
    fn handle(&self, cmd: AdminCommand) -> BoxFuture<'_, Result<String, AdminError>> {
        Box::pin(async move {
            match cmd {
                AdminCommand::ShowStat(f) => Ok(super::stat::show_stat(self, f).await),
                AdminCommand::ShowInfo(f) => Ok(super::stat::show_info(self, f)),
                AdminCommand::ShowServersState(svc) => {
                    super::stat::show_servers_state(self, svc.as_deref())
                }
                AdminCommand::ShowVrrp => {
                    let f = self.vrrp.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    Ok(f.map_or_else(|| "no VRRP instances configured".to_string(), |f| f()))
                }
                AdminCommand::ShowFlows(filter) => {
                    self.ask_plane(|tx| PlaneRequest::ShowFlows(filter, tx))
                        .await
                }
                AdminCommand::SetState(r, s) => self.set_admin(&r, |_| s),
                AdminCommand::DisableServer(r) => self.set_admin(&r, |_| AdminState::Maint),
                AdminCommand::EnableServer(r) => self.set_admin(&r, |a| {
                    if a == AdminState::Maint {
                        AdminState::Ready
                    } else {
                        a
                    }
                }),
                AdminCommand::SetHealth(r, h) => self.force_health(&r, h).await,
                AdminCommand::SetWeight(r, w) => self.set_weight(&r, w),
                AdminCommand::Reload => self.ask_plane(PlaneRequest::Reload).await,
                AdminCommand::Help | AdminCommand::Quit => Ok(String::new()),
            }
        })
    }
}
