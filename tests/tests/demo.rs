//! Issue 8, acceptance 1, 2 and 4 for the demo: `lb-demo` (what `scripts/demo.sh` runs)
//! walks through the seed's tests with every step passing; afterwards, and after an
//! interrupted run (SIGINT midway), no namespace, process, pinned object or XDP program
//! of it remains; with `--keep` every command docs/demo.md lists works, and
//! `scripts/demo.sh --down` removes it all.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lb_tests::{demo, require};

/// One demo at a time: they share names (that is the point of a demo's fixed names).
static SERIAL: Mutex<()> = Mutex::new(());

/// The demo's steps.
const STEPS: usize = 7;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Starts `lb-demo ARGS` with its output collected line by line.
struct Run {
    child: Child,
    out: Arc<Mutex<String>>,
}

impl Run {
    fn start(args: &[&str]) -> Result<Run> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lb-demo"))
            .args(args)
            .env("LB_BIN", require::lb_bin())
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting lb-demo")?;
        let out = Arc::new(Mutex::new(String::new()));
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let out = Arc::clone(&out);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut o = out.lock().unwrap_or_else(|e| e.into_inner());
                    o.push_str(&line);
                    o.push('\n');
                }
            });
        }
        Ok(Run { child, out })
    }

    fn output(&self) -> String {
        self.out.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        while !self.output().contains(needle) {
            if let Some(st) = self.child.try_wait()? {
                bail!(
                    "lb-demo exited ({st}) before {needle:?}:\n{}",
                    self.output()
                );
            }
            if start.elapsed() > timeout {
                bail!("no {needle:?} within {timeout:?}:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Waits for the exit (bounded) and returns the exit code and the whole output.
    fn finish(mut self, timeout: Duration) -> Result<(Option<i32>, String)> {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait()? {
                std::thread::sleep(Duration::from_millis(100));
                return Ok((st.code(), self.output()));
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!(
                    "lb-demo did not finish within {timeout:?}:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// What of the demo runs now: processes (pid -> command line) in its namespaces, and the
/// ids of the XDP programs attached to its interfaces.
#[derive(Debug, Default)]
struct Snapshot {
    pids: BTreeMap<i32, String>,
    xdp_progs: Vec<u32>,
}

fn cmdline(pid: i32) -> Option<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
}

fn snapshot() -> Result<Snapshot> {
    let mut s = Snapshot::default();
    for ns in demo::namespaces()? {
        for pid in demo::pids_in(&ns) {
            if let Some(c) = cmdline(pid) {
                s.pids.insert(pid, c);
            }
        }
        let links = demo::ip_in(&ns, &["-d", "link", "show"])?;
        let words: Vec<&str> = links.split_whitespace().collect();
        for w in words.windows(3) {
            if w[0].starts_with("prog/xdp") && w[1] == "id" {
                if let Ok(id) = w[2].parse() {
                    s.xdp_progs.push(id);
                }
            }
        }
    }
    Ok(s)
}

/// Fails unless nothing of the demo is left: no namespace, pin directory, run file or
/// state directory; none of the processes or XDP programs seen while it ran; and no
/// process whose command line is the demo's.
fn assert_clean(during: &Snapshot) -> Result<()> {
    let left = demo::leftovers();
    if !left.is_empty() {
        bail!("left behind: {left:?}");
    }
    for (pid, c) in &during.pids {
        if cmdline(*pid).as_ref() == Some(c) {
            bail!("process {pid} ({c}) of the demo still runs");
        }
    }
    for id in &during.xdp_progs {
        let out = Command::new("bpftool")
            .args(["prog", "show", "id", &id.to_string()])
            .output()
            .context("bpftool")?;
        if out.status.success() {
            bail!(
                "XDP program {id} of the demo is still loaded: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
    for e in std::fs::read_dir("/proc")?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Some(c) = cmdline(pid) {
            if c.contains(demo::STATE_DIR) || c.contains("lb-demo serve") {
                bail!("process {pid} ({c}) of the demo still runs");
            }
        }
    }
    Ok(())
}

/// Removes a demo a previous, killed run may have left, so this test starts clean.
fn start_clean() -> Result<()> {
    if !demo::leftovers().is_empty() {
        eprintln!("removing a previous demo: {:?}", demo::down()?);
    }
    Ok(())
}

#[test]
fn demo_walks_through_every_step_and_leaves_nothing() -> Result<()> {
    if !require::privileged("demo_walks_through_every_step_and_leaves_nothing") {
        return Ok(());
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    start_clean()?;
    let started = Instant::now();
    let mut run = Run::start(&[])?;
    run.wait_for_line("PASS step 1", Duration::from_secs(60))?;
    let during = snapshot()?;
    let (code, out) = run.finish(Duration::from_secs(120))?;
    println!("{out}\ndemo took {:?}", started.elapsed());
    assert_eq!(code, Some(0), "the demo failed:\n{out}");
    for n in 1..=STEPS {
        assert!(out.contains(&format!("PASS step {n}:")), "step {n}:\n{out}");
    }
    assert!(!out.contains("FAIL"), "{out}");
    assert!(out.contains(&format!("{STEPS} of {STEPS} steps passed")));
    // The claims the steps print, beyond PASS.
    for needle in [
        "state=MASTER priority=150",
        "state=BACKUP priority=100",
        "lb import ",
        "Set-Cookie: JSESSIONID=",
        "x_forwarded_for=198.18.0.10",
        "Server webfarm/webA is DOWN",
        "Server webfarm/webA is UP",
        "first via lb2 at",
        "# pxname,svname",
        "stats page: http://198.18.0.99/haproxy?stats  user someuser  password somepassword",
        "without credentials: 401; with them: 200",
    ] {
        assert!(out.contains(needle), "{needle:?} missing:\n{out}");
    }
    assert!(during.pids.len() >= 5, "{during:?}");
    assert!(!during.xdp_progs.is_empty(), "{during:?}");
    assert_clean(&during)
}

#[test]
fn interrupted_demo_leaves_nothing() -> Result<()> {
    if !require::privileged("interrupted_demo_leaves_nothing") {
        return Ok(());
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    start_clean()?;
    let mut run = Run::start(&[])?;
    run.wait_for_line("PASS step 2", Duration::from_secs(60))?;
    let during = snapshot()?;
    let pid = libc::pid_t::try_from(run.child.id())?;
    // SAFETY: plain syscall on our own, unreaped child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let (code, out) = run.finish(Duration::from_secs(60))?;
    println!("{out}");
    assert_eq!(code, Some(130), "exit code after SIGINT:\n{out}");
    assert!(
        out.contains("interrupted") && out.contains("Tearing down"),
        "{out}"
    );
    assert!(
        !out.contains("PASS step 7"),
        "the demo ran to its end:\n{out}"
    );
    assert!(during.pids.len() >= 5, "{during:?}");
    assert_clean(&during)
}

/// The shell commands of docs/demo.md: the lines of its ```sh blocks.
fn doc_commands() -> Result<Vec<String>> {
    let text = std::fs::read_to_string(repo_root().join("docs/demo.md"))?;
    let mut cmds = Vec::new();
    let mut in_sh = false;
    for line in text.lines() {
        if line.starts_with("```") {
            in_sh = line == "```sh" || line.starts_with("```sh ");
            continue;
        }
        let cmd = line.split(" #").next().unwrap_or("").trim();
        if in_sh && !cmd.is_empty() {
            cmds.push(cmd.to_string());
        }
    }
    Ok(cmds)
}

#[test]
fn kept_demo_answers_the_documented_commands_and_goes_down() -> Result<()> {
    if !require::privileged("kept_demo_answers_the_documented_commands_and_goes_down") {
        return Ok(());
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    start_clean()?;
    let docs = doc_commands()?;
    // The commands --keep prints are the ones the docs list.
    for c in demo::poke_commands() {
        assert!(docs.contains(&c), "docs/demo.md lacks `{c}`");
    }
    let run = Run::start(&["--keep"])?;
    let (code, out) = run.finish(Duration::from_secs(120))?;
    let during = snapshot()?;
    let result = (|| -> Result<()> {
        assert_eq!(code, Some(0), "{out}");
        assert!(out.contains("scripts/demo.sh --down"), "{out}");
        assert!(
            !demo::namespaces()?.is_empty(),
            "--keep removed the namespaces"
        );
        // Every command in the docs: the demo itself is what the other tests run (the
        // binary scripts/demo.sh execs); the rest runs here, against the kept demo, with
        // --down last.
        let lb = require::lb_bin().display().to_string();
        let (tx, rx) = mpsc::channel();
        for c in &docs {
            if c == "./scripts/demo.sh" || c == "./scripts/demo.sh --keep" {
                continue;
            }
            let full = c.replace("target/debug/lb ", &format!("{lb} "));
            let out = demo::run(
                Command::new("sh")
                    .arg("-c")
                    .arg(&full)
                    .current_dir(repo_root()),
                Duration::from_secs(30),
            )?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            println!(
                "$ {c}\n{}",
                text.lines().take(4).collect::<Vec<_>>().join("\n")
            );
            if !out.status.success() {
                bail!(
                    "`{c}` failed: {}{}",
                    text,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let _ = tx.send((c.clone(), text));
        }
        let outputs: BTreeMap<String, String> = rx.try_iter().collect();
        let curl = format!("ip netns exec lbdemo-client curl -si http://{}/", demo::VIP);
        assert!(
            outputs
                .get(&curl)
                .is_some_and(|o| o.contains("server=http")),
            "{outputs:?}"
        );
        assert!(
            docs.last().is_some_and(|c| c == "./scripts/demo.sh --down"),
            "docs/demo.md's last command tears down: {docs:?}"
        );
        Ok(())
    })();
    if result.is_err() {
        let _ = demo::down();
    }
    result?;
    assert_clean(&during)
}
