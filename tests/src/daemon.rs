//! Running `lb` the way a user does, inside a test's namespace, with its pinned maps
//! removed afterwards.

use crate::{
    netns::{Netns, NsProcess},
    require::lb_bin,
};
use anyhow::{anyhow, bail, Context, Result};
use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

/// Where `lb` pins an instance's maps by default.
pub const PIN_ROOT: &str = "/sys/fs/bpf/lb";
/// Where `lb` keeps an instance's admin socket and VRRP status by default.
pub const RUN_DIR: &str = "/run/lb";
/// How long `lb run` may take to report that it attached.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// The line `lb run` logs once XDP is attached and VIPs are written.
pub const READY_LINE: &str = "XDP attached";

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A unique `lb` instance name whose pin directory is removed on drop, so tests running
/// in parallel never share maps and never leave pinned objects behind.
#[derive(Debug)]
pub struct Instance {
    name: String,
}

impl Instance {
    /// A fresh instance name `<prefix>-<pid>-<n>`.
    pub fn new(prefix: &str) -> Instance {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}-{}-{n}", std::process::id());
        let inst = Instance { name };
        inst.remove_pins();
        inst
    }

    /// The instance name, for the config's `instance` key.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `<bpffs>/lb/<name>`.
    pub fn pin_dir(&self) -> PathBuf {
        Path::new(PIN_ROOT).join(&self.name)
    }

    /// Removes what an `lb run` of this instance leaves when it is killed: pinned maps,
    /// the default admin socket and the VRRP status directory.
    fn remove_pins(&self) {
        let _ = std::fs::remove_dir_all(self.pin_dir());
        let _ = std::fs::remove_file(Path::new(RUN_DIR).join(format!("{}.sock", self.name)));
        let _ = std::fs::remove_dir_all(Path::new(RUN_DIR).join(&self.name));
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.remove_pins();
    }
}

/// A config file in a temporary directory that lives as long as this value.
#[derive(Debug)]
pub struct ConfigFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl ConfigFile {
    /// Writes `text` to a fresh `lb.toml`.
    pub fn new(text: &str) -> Result<ConfigFile> {
        let dir = tempfile::tempdir().context("creating a temp dir")?;
        let path = dir.path().join("lb.toml");
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(ConfigFile { _dir: dir, path })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What a child process prints on stdout and stderr, gathered line by line by reader
/// threads, so a test can wait for a log line and show the whole log when it fails.
#[derive(Clone, Debug, Default)]
pub struct OutputLog(Arc<Mutex<String>>);

impl OutputLog {
    /// Takes `proc`'s piped stdout and stderr (whichever are piped) and gathers them.
    pub fn collect(proc: &mut NsProcess) -> OutputLog {
        let log = OutputLog::default();
        for pipe in [
            proc.take_stderr()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            proc.take_stdout()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut l = log.0.lock().unwrap_or_else(|e| e.into_inner());
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        log
    }

    /// Everything gathered so far.
    pub fn text(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits until `needle` has been printed `count` times; how long that took. Fails with
    /// the log after `timeout`.
    pub fn wait_for(&self, needle: &str, count: usize, timeout: Duration) -> Result<Duration> {
        let start = Instant::now();
        while self.text().matches(needle).count() < count {
            if start.elapsed() > timeout {
                bail!(
                    "no {needle:?} x{count} within {timeout:?}:\n{}",
                    self.text()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(start.elapsed())
    }
}

/// A running `lb run` inside a namespace; killed on drop if still running.
pub struct Daemon {
    proc: NsProcess,
    log: OutputLog,
    _config: ConfigFile,
}

impl Daemon {
    /// Starts `lb run --config <text>` in `ns` (network namespace only, so bpffs stays
    /// visible) and waits until it reports it attached. Fails with its log if it exits.
    pub fn start(ns: &Netns, config_text: &str) -> Result<Daemon> {
        let config = ConfigFile::new(config_text)?;
        let mut cmd = ns.command_net_only(lb_bin())?;
        cmd.arg("run")
            .arg("--config")
            .arg(config.path())
            .env("LB_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut proc = NsProcess::spawn(cmd)?;
        let log = OutputLog::collect(&mut proc);
        let mut daemon = Daemon {
            proc,
            log,
            _config: config,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if daemon.log().contains(READY_LINE) {
                return Ok(daemon);
            }
            if let Some(status) = daemon.proc.try_wait()? {
                std::thread::sleep(Duration::from_millis(100));
                bail!("lb run exited early ({status}):\n{}", daemon.log());
            }
            if Instant::now() > deadline {
                bail!(
                    "lb run did not attach within {START_TIMEOUT:?}:\n{}",
                    daemon.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the daemon printed so far.
    pub fn log(&self) -> String {
        self.log.text()
    }

    /// Waits until the daemon has logged `needle` `count` times (reloads, health
    /// transitions...); how long that took.
    pub fn wait_log(&self, needle: &str, count: usize, timeout: Duration) -> Result<Duration> {
        self.log.wait_for(needle, count, timeout)
    }

    /// The config file the daemon runs on (rewrite it, then SIGHUP or `lb reload`).
    pub fn config_path(&self) -> &Path {
        self._config.path()
    }

    /// The exit status if the daemon has exited (e.g. after a signal), else `None`.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        self.proc.try_wait()
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Sends `signal` to the daemon.
    pub fn signal(&mut self, signal: libc::c_int) -> Result<()> {
        self.proc.kill_with(signal)
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        self.proc.kill_with(libc::SIGTERM)?;
        self.wait_exit(Duration::from_secs(10))
    }

    /// Waits up to `timeout` for the daemon to exit (after a signal it was sent), then
    /// lets the reader threads drain its last lines; fails with its log if it runs on.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let status = self
            .proc
            .wait_timeout(timeout)?
            .ok_or_else(|| anyhow!("lb did not exit within {timeout:?}:\n{}", self.log()))?;
        std::thread::sleep(Duration::from_millis(50));
        Ok(status)
    }
}

/// Runs `lb <args>` (not as a daemon) and returns (exit status, stdout, stderr).
pub fn lb(args: &[&str]) -> Result<(ExitStatus, String, String)> {
    let out = std::process::Command::new(lb_bin())
        .args(args)
        .env("LB_LOG", "info")
        .output()
        .context("running lb")?;
    Ok((
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}
