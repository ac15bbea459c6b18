//! What each instance is doing, for `lb vrrp-status`, tests and operators, until the admin
//! socket exists: every instance keeps an [`InstanceStatus`]; the [`StatusBoard`] writes
//! all of them to one small text file, at once on a transition and at most every
//! [`FLUSH_INTERVAL`] for counters.
//!
//! The file is written by a thread of its own, never by the membership thread: /run may be
//! on a disk, and a write or rename there waited behind other IO for over 100 ms on a busy
//! machine, long enough for the backups of a 20 ms master to take over.
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
    sync::{mpsc, Arc, Mutex},
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
    file: Option<Arc<StatusFile>>,
    inner: Mutex<(BTreeMap<String, String>, bool)>,
    /// Numbers the texts handed to the writer, so an older one never replaces a newer.
    seq: std::sync::atomic::AtomicU64,
    writer: Option<Mutex<mpsc::Sender<(u64, String)>>>,
}

/// The file and the number of the text it holds.
#[derive(Debug)]
struct StatusFile {
    path: PathBuf,
    written: Mutex<u64>,
}

impl StatusFile {
    /// Writes `text` (number `seq`) unless a newer one is there; write then rename, so a
    /// reader never sees half a file.
    fn write(&self, seq: u64, text: &str) {
        let Ok(mut w) = self.written.lock() else {
            return;
        };
        if seq <= *w {
            return;
        }
        let tmp = self.path.with_extension("tmp");
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(&tmp, &self.path);
        }
        *w = seq;
    }
}

impl StatusBoard {
    /// A board writing to `path` (none: keep in memory only).
    pub fn new(path: Option<PathBuf>) -> Self {
        if let Some(dir) = path.as_deref().and_then(Path::parent) {
            let _ = std::fs::create_dir_all(dir);
        }
        let file = path.map(|path| {
            Arc::new(StatusFile {
                path,
                written: Mutex::new(0),
            })
        });
        let writer = file.as_ref().and_then(|f| {
            let (tx, rx) = mpsc::channel::<(u64, String)>();
            let f = Arc::clone(f);
            std::thread::Builder::new()
                .name("lb-vrrp-status".into())
                .spawn(move || {
                    while let Ok(mut next) = rx.recv() {
                        // Only the newest of what queued up meanwhile is worth writing.
                        while let Ok(n) = rx.try_recv() {
                            next = n;
                        }
                        f.write(next.0, &next.1);
                    }
                })
                .ok()
                .map(|_| Mutex::new(tx))
        });
        Self {
            file,
            inner: Mutex::new((BTreeMap::new(), false)),
            seq: std::sync::atomic::AtomicU64::new(0),
            writer,
        }
    }

    /// Records `status`; has the file written now if `now` (a transition), else marks it
    /// dirty for the next [`StatusBoard::flush`]. Never waits for the disk.
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

    fn text_locked(&self, g: &mut (BTreeMap<String, String>, bool)) -> (u64, String) {
        g.1 = false;
        let mut text = String::new();
        for l in g.0.values() {
            text.push_str(l);
            text.push('\n');
        }
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        (seq, text)
    }

    fn write_locked(&self, g: &mut (BTreeMap<String, String>, bool)) {
        if self.file.is_none() {
            g.1 = false;
            return;
        }
        let next = self.text_locked(g);
        let queued = self
            .writer
            .as_ref()
            .and_then(|w| w.lock().ok())
            .is_some_and(|w| w.send(next.clone()).is_ok());
        if !queued {
            if let Some(f) = &self.file {
                f.write(next.0, &next.1);
            }
        }
    }

    /// Writes the current state now, on the calling thread (at shutdown, so the last
    /// state is on disk before the process exits).
    pub fn flush_now(&self) {
        let Ok(mut g) = self.inner.lock() else { return };
        let Some(f) = &self.file else { return };
        let (seq, text) = self.text_locked(&mut g);
        f.write(seq, &text);
    }

    /// Removes the file (the daemon is gone; a stale status would mislead).
    pub fn remove(&self) {
        if let Some(f) = &self.file {
            let _ = std::fs::remove_file(&f.path);
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
