//! What each instance is doing, for `lb vrrp-status`, tests and operators, until the admin
//! socket exists: every instance keeps an [`InstanceStatus`]; the [`StatusBoard`] writes
//! all of them to one small text file, at once on a transition and at most every
//! [`FLUSH_INTERVAL`] for counters.
//!
//! File format: one line per instance, `key=value` fields separated by spaces, e.g.
//! `instance=web vrid=51 state=MASTER priority=150 ... drop.checksum=3 ...`.

use super::{packet::DropReason, state::State};
use crate::config::VrrpConfig;
use std::{
    collections::BTreeMap,
    fmt::Write as _,
    net::IpAddr,
    path::{Path, PathBuf},
    sync::Mutex,
    time::Duration,
};

/// How often changed counters are written out.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);

/// The state and counters of one instance.
#[derive(Clone, Debug)]
pub struct InstanceStatus {
    /// Instance name.
    pub name: String,
    /// Virtual router id.
    pub vrid: u8,
    /// The priority we advertise (the configured one, lowered by failed tracked objects).
    pub priority: u8,
    /// The configured priority.
    pub base_priority: u8,
    /// Tracked objects that are failed now (`if:NAME`, `svc:NAME`).
    pub track_failed: Vec<String>,
    /// Our primary address (advert source).
    pub src: IpAddr,
    /// Current state.
    pub state: State,
    /// Transitions so far (flapping shows here).
    pub transitions: u64,
    /// Adverts accepted.
    pub rx: u64,
    /// Adverts sent.
    pub tx: u64,
    /// Adverts that could not be sent (link down, ...).
    pub tx_errors: u64,
    /// Drops per [`DropReason`] index.
    pub drops: [u64; DropReason::NAMES.len()],
    /// Source and priority of the last accepted advert.
    pub last_heard: Option<(IpAddr, u8)>,
    /// The master's advert interval as last learned.
    pub master_adver_interval: Duration,
    /// The VIPs.
    pub vips: Vec<IpAddr>,
}

impl InstanceStatus {
    /// A fresh status in INIT.
    pub fn new(cfg: &VrrpConfig, src: IpAddr) -> Self {
        Self {
            name: cfg.name.clone(),
            vrid: cfg.vrid,
            priority: cfg.priority,
            base_priority: cfg.priority,
            track_failed: Vec::new(),
            src,
            state: State::Initialize,
            transitions: 0,
            rx: 0,
            tx: 0,
            tx_errors: 0,
            drops: [0; DropReason::NAMES.len()],
            last_heard: None,
            master_adver_interval: cfg.advert_interval,
            vips: cfg.vips.iter().map(|v| v.addr).collect(),
        }
    }

    /// Counts one dropped packet.
    pub fn count_drop(&mut self, reason: &DropReason) {
        if let Some(c) = self.drops.get_mut(reason.index()) {
            *c += 1;
        }
    }

    /// The status line.
    pub fn render(&self) -> String {
        let mut s = format!(
            "instance={} vrid={} state={} priority={} src={} transitions={} rx={} tx={} tx_errors={} master_interval_ms={}",
            self.name,
            self.vrid,
            self.state.as_str(),
            self.priority,
            self.src,
            self.transitions,
            self.rx,
            self.tx,
            self.tx_errors,
            self.master_adver_interval.as_millis(),
        );
        match self.last_heard {
            Some((a, p)) => {
                let _ = write!(s, " last_heard={a} last_heard_priority={p}");
            }
            None => s.push_str(" last_heard=- last_heard_priority=-"),
        }
        let _ = write!(
            s,
            " base_priority={} track_failed={}",
            self.base_priority,
            if self.track_failed.is_empty() {
                "-".to_string()
            } else {
                self.track_failed.join(",")
            }
        );
        let vips: Vec<String> = self.vips.iter().map(IpAddr::to_string).collect();
        let _ = write!(s, " vips={}", vips.join(","));
        for (name, n) in DropReason::NAMES.iter().zip(self.drops) {
            let _ = write!(s, " drop.{name}={n}");
        }
        s
    }
}

/// All instances' status, written to one file.
#[derive(Debug)]
pub struct StatusBoard {
    path: Option<PathBuf>,
    inner: Mutex<(BTreeMap<String, String>, bool)>,
}

impl StatusBoard {
    /// A board writing to `path` (none: keep in memory only).
    pub fn new(path: Option<PathBuf>) -> Self {
        if let Some(dir) = path.as_deref().and_then(Path::parent) {
            let _ = std::fs::create_dir_all(dir);
        }
        Self {
            path,
            inner: Mutex::new((BTreeMap::new(), false)),
        }
    }

    /// Records `status`; writes the file now if `now` (a transition), else marks it dirty
    /// for the next [`StatusBoard::flush`].
    pub fn update(&self, status: &InstanceStatus, now: bool) {
        let Ok(mut g) = self.inner.lock() else { return };
        g.0.insert(status.name.clone(), status.render());
        g.1 = true;
        if now {
            self.write_locked(&mut g);
        }
    }

    /// Writes the file if anything changed since the last write.
    pub fn flush(&self) {
        let Ok(mut g) = self.inner.lock() else { return };
        if g.1 {
            self.write_locked(&mut g);
        }
    }

    /// Forgets an instance (removed by a reload) and writes the file.
    pub fn forget(&self, name: &str) {
        let Ok(mut g) = self.inner.lock() else { return };
        g.0.remove(name);
        self.write_locked(&mut g);
    }

    /// The current lines, one per instance.
    pub fn lines(&self) -> Vec<String> {
        self.inner
            .lock()
            .map(|g| g.0.values().cloned().collect())
            .unwrap_or_default()
    }

    fn write_locked(&self, g: &mut (BTreeMap<String, String>, bool)) {
        g.1 = false;
        let Some(path) = &self.path else { return };
        let mut text = String::new();
        for l in g.0.values() {
            text.push_str(l);
            text.push('\n');
        }
        // Write then rename, so a reader never sees half a file.
        let tmp = path.with_extension("tmp");
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(&tmp, path);
        }
    }

    /// Removes the file (the daemon is gone; a stale status would mislead).
    pub fn remove(&self) {
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Parses one status line into its fields.
pub fn parse_line(line: &str) -> BTreeMap<String, String> {
    line.split_whitespace()
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::vrrp::VipAddr;

    #[test]
    fn render_and_parse() {
        let cfg = VrrpConfig {
            name: "web".into(),
            interface: "eth0".into(),
            vrid: 51,
            priority: 150,
            advert_interval: Duration::from_millis(100),
            preempt: true,
            preempt_delay: Duration::ZERO,
            vips: vec![VipAddr {
                addr: "198.18.0.99".parse().unwrap(),
                prefix_len: 24,
            }],
            unicast_peers: vec![],
            notify: None,
            garp_count: 5,
            garp_refresh: None,
            tracks: vec![],
            auth_key: None,
        };
        let mut s = InstanceStatus::new(&cfg, "198.18.0.2".parse().unwrap());
        s.count_drop(&DropReason::Checksum);
        let f = parse_line(&s.render());
        assert_eq!(f["state"], "INIT");
        assert_eq!(f["drop.checksum"], "1");
        assert_eq!(f["drop.ttl"], "0");
        assert_eq!(f["vips"], "198.18.0.99");
    }
}
