//! `show stat`, `show info` and `show servers state`: HAProxy's formats, so tools written
//! for HAProxy's stats socket read ours.

use super::{server_count, server_name, Control};
use crate::admin::{AdminError, AdminState, OutputFormat};
use std::{fmt::Write, time::Instant};

/// `show stat`: HAProxy's CSV (header line `# pxname,svname,...`) or JSON, the same
/// rendering of the same snapshot as the stats page's `;csv` and `;json`.
pub async fn show_stat(control: &Control, format: OutputFormat) -> String {
    let json = format == OutputFormat::Json;
    let snap = match crate::stats::sources() {
        Some(s) if std::ptr::eq(s.control(), control) => s.snapshot(json).await,
        // A state manager the daemon did not install (tests): no XDP or VRRP figures.
        _ => crate::stats::model::build(control, Err("no XDP reader".into()), None),
    };
    if json {
        crate::stats::json::render(&snap)
    } else {
        crate::stats::csv::render(&snap)
    }
}

/// `show info`: process information as `Name: value` lines (HAProxy's style) or JSON.
pub fn show_info(control: &Control, format: OutputFormat) -> String {
    let up = control.started().elapsed().as_secs();
    let cfg = control.config();
    let fields = [
        ("Name", "lb".to_string()),
        ("Version", env!("CARGO_PKG_VERSION").to_string()),
        ("Pid", std::process::id().to_string()),
        ("Uptime_sec", up.to_string()),
        (
            "Uptime",
            format!(
                "{}d {}h{:02}m{:02}s",
                up / 86400,
                up / 3600 % 24,
                up / 60 % 60,
                up % 60
            ),
        ),
        ("Instance", cfg.instance.clone()),
        ("Interface", cfg.xdp.interface.clone()),
        ("Services", cfg.services.len().to_string()),
    ];
    match format {
        OutputFormat::Default => fields.iter().fold(String::new(), |mut s, (k, v)| {
            let _ = writeln!(s, "{k}: {v}");
            s
        }),
        OutputFormat::Json => {
            let body: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("\"{k}\":\"{v}\""))
                .collect();
            format!("{{{}}}\n", body.join(","))
        }
    }
}

/// `show servers state [service]`: one line per server, HAProxy's field order where it
/// applies (`be_name srv_name srv_addr srv_op_state srv_admin_state srv_uweight ...`).
pub fn show_servers_state(control: &Control, only: Option<&str>) -> Result<String, AdminError> {
    let cfg = control.config();
    if let Some(name) = only {
        if !cfg.services.iter().any(|s| s.name == name) {
            return Err(AdminError::NoSuchService);
        }
    }
    let statuses = control.statuses();
    let mut out = String::from("# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change status\n");
    let now = Instant::now();
    for (si, svc) in cfg.services.iter().enumerate() {
        if only.is_some_and(|n| n != svc.name) {
            continue;
        }
        for (i, &st) in statuses[si].iter().enumerate().take(server_count(svc)) {
            let addr = match &svc.http {
                Some(h) => h.servers[i].addr.to_string(),
                None => svc.backends[i].addr.to_string(),
            };
            // HAProxy: op_state 0 stopped, 2 running; admin_state bit 0x01 maint, 0x08 drain.
            let op = if st.keeps_existing() { 2 } else { 0 };
            let admin = match st.admin {
                AdminState::Ready => 0,
                AdminState::Maint => 1,
                AdminState::Drain => 8,
            };
            let _ = writeln!(
                out,
                "{} {} {} {} {} {} {} {} {} {} {}",
                si + 1,
                svc.name,
                i + 1,
                server_name(svc, i).unwrap_or("?"),
                addr,
                op,
                admin,
                st.weight,
                st.config_weight,
                now.saturating_duration_since(st.since).as_secs(),
                st.status_word()
            );
        }
    }
    Ok(out)
}
