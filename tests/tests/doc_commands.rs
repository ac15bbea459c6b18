//! Issue 8, acceptance 4: every command in the docs is run by a test, so doc examples do
//! not rot.
//!
//! # The convention (README.md and docs/*.md)
//!
//! Commands live in fenced code blocks. The first word of the info string is the language;
//! only two languages hold commands:
//!
//! - ```` ```sh ````: every line is a command (a trailing `\` continues it; `#` starts a
//!   comment, at the start of a line or after a space).
//! - ```` ```console ````: a transcript: lines starting with `$ ` are commands, the others
//!   their output.
//!
//! A `$ ` line in any other block is an error: label the block `console`.
//!
//! Words after the language say who runs the block:
//!
//! - none: **this test runs it**, in a sandbox (below), in page order; every command must
//!   exit 0.
//! - `host=backend`: the same, on the sandbox's backend host instead of the lb node.
//! - `run-by=FILE[,FILE]`: another test runs these commands. Each FILE must exist, and
//!   for each command one of them must name the page (e.g. `docs/demo.md`) or the
//!   command (its program and first argument).
//! - `norun`: nothing can run it here (it needs systemd as PID 1, a real package
//!   install, or minutes of benchmark). The page says so next to it.
//!
//! Whatever the marker, every `lb` command (program `lb` or a path ending in `/lb`) must
//! parse with the real clap tree (`lb::cli::Cli`), every `cargo xtask SUB --opt` must name
//! a subcommand and options that `cargo xtask help SUB` lists, and every `lb_X.Y.Z-1_*.deb`
//! must carry the workspace version.
//!
//! ```` ```toml file=PATH ```` blocks are files: the sandbox writes them before running the
//! page's commands.
//!
//! # The sandbox
//!
//! One per page, removed afterwards: three network namespaces on one bridge, as in
//! docs/operations.md: `client` (198.18.0.10), `lb` (198.18.0.100) and `backend`
//! (198.18.0.102 and .103), each with its interface `eth0`. Each host runs one shell
//! (`bash`) in its own mount namespace with a private tmpfs on `/run/lb` and a private
//! bpffs on `/sys/fs/bpf`, so `lb` finds its default socket and pin paths as written and
//! nothing reaches the host's. `lb` on `PATH` is the binary under test. The one rewrite:
//! `/etc/lb/lb.toml` becomes a file of the sandbox, holding the page's
//! `toml file=/etc/lb/lb.toml` block, or else the packaged example config
//! (lb-userspace/packaging/lb.toml) with every example uncommented.
//!
//! `lb run` and `lb decap` serve until stopped: they start in the background, the test
//! waits for their ready line (`XDP attached`, `decap attached`), and after the page's
//! last command stops them with SIGTERM; they must exit 0.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use lb_tests::netns::{Netns, Topology};
use lb_tests::require;

/// How long one documented command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a documented daemon may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the repository root")
}

/// Who runs a block's commands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Runner {
    /// This test, on the named sandbox host.
    Sandbox(String),
    /// The named test files.
    RunBy(Vec<String>),
    /// Nobody (parsed only).
    NoRun,
}

/// One command of a page.
#[derive(Debug, Clone)]
struct DocCommand {
    page: String,
    line: usize,
    text: String,
    runner: Runner,
}

/// What a page holds: its commands and its files.
#[derive(Debug, Default)]
struct Page {
    commands: Vec<DocCommand>,
    files: BTreeMap<String, String>,
}

/// README.md and docs/*.md, as paths relative to the repository root.
fn pages() -> Result<Vec<String>> {
    let mut pages = vec!["README.md".to_string()];
    let mut docs: Vec<String> = std::fs::read_dir(repo_root().join("docs"))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    pages.extend(docs);
    Ok(pages)
}

/// Strips a trailing comment (`#` at the start or after a space, outside quotes).
fn strip_comment(line: &str) -> &str {
    let (mut single, mut double) = (false, false);
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev.is_whitespace() => return &line[..i],
            _ => {}
        }
        prev = c;
    }
    line
}

/// Extracts the commands and files of one page, per the convention above.
fn parse_page(page: &str, text: &str) -> Result<Page> {
    let mut out = Page::default();
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let Some(info) = line.trim_start().strip_prefix("```") else {
            continue;
        };
        let mut words = info.split_whitespace();
        let lang = words.next().unwrap_or("").to_string();
        let mut runner = Runner::Sandbox("lb".into());
        let mut file = None;
        for w in words {
            match w.split_once('=') {
                None if w == "norun" => runner = Runner::NoRun,
                Some(("host", h)) if ["lb", "backend", "client"].contains(&h) => {
                    runner = Runner::Sandbox(h.into())
                }
                Some(("run-by", files)) => {
                    runner = Runner::RunBy(files.split(',').map(str::to_string).collect())
                }
                Some(("file", path)) => file = Some(path.to_string()),
                _ => bail!("{page}:{}: unknown code block marker {w:?}", n + 1),
            }
        }
        let mut body = Vec::new();
        for (m, l) in lines.by_ref() {
            if l.trim_start().starts_with("```") {
                break;
            }
            body.push((m + 1, l));
        }
        if let Some(path) = file {
            let text: Vec<&str> = body.iter().map(|(_, l)| *l).collect();
            out.files.insert(path, text.join("\n") + "\n");
            continue;
        }
        let mut pending: Option<(usize, String)> = None;
        for (m, l) in body {
            let cmd = match lang.as_str() {
                "sh" => l,
                "console" => match l.strip_prefix("$ ") {
                    Some(c) => c,
                    None => continue,
                },
                _ => {
                    ensure!(
                        !l.starts_with("$ "),
                        "{page}:{m}: a `$ ` command in a ```{lang} block: label it ```console"
                    );
                    continue;
                }
            };
            let (start, mut joined) = pending.take().unwrap_or((m, String::new()));
            let part = strip_comment(cmd).trim_end();
            if let Some(cont) = part.strip_suffix('\\') {
                joined.push_str(cont);
                pending = Some((start, joined));
                continue;
            }
            joined.push_str(part);
            let joined = joined.trim().to_string();
            if !joined.is_empty() {
                out.commands.push(DocCommand {
                    page: page.to_string(),
                    line: start,
                    text: joined,
                    runner: runner.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// The words of a command up to its first operator (`|`, `;`, `&`, redirection), with
/// quotes removed; leading `NAME=value` assignments are dropped.
fn words(cmd: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut has = false;
    let (mut single, mut double) = (false, false);
    let mut chars = cmd.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if !double => {
                single = !single;
                has = true;
            }
            '"' if !single => {
                double = !double;
                has = true;
            }
            '\\' if !single => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    has = true;
                }
            }
            c if single || double => cur.push(c),
            '|' | ';' | '&' | '>' | '<' => {
                // `2>file`: the digit belongs to the redirection.
                if matches!(c, '>' | '<')
                    && !cur.is_empty()
                    && cur.chars().all(|d| d.is_ascii_digit())
                {
                    cur.clear();
                    has = false;
                }
                break;
            }
            c if c.is_whitespace() => {
                if has || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            c => cur.push(c),
        }
    }
    if has || !cur.is_empty() {
        out.push(cur);
    }
    let env = out
        .iter()
        .take_while(|w| {
            w.split_once('=').is_some_and(|(k, _)| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
        })
        .count();
    out.drain(..env);
    out
}

/// Whether `program` is the `lb` binary (`lb`, `target/debug/lb`, `/usr/sbin/lb`).
fn is_lb(program: &str) -> bool {
    program == "lb" || program.ends_with("/lb")
}

/// `cargo xtask help SUB`, cached per subcommand.
fn xtask_help(cache: &mut BTreeMap<String, String>, sub: &str) -> Result<String> {
    if let Some(h) = cache.get(sub) {
        return Ok(h.clone());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["xtask", "help", sub])
        .current_dir(repo_root())
        .output()
        .context("cargo xtask help")?;
    ensure!(
        out.status.success(),
        "`cargo xtask help {sub}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    cache.insert(sub.to_string(), help.clone());
    Ok(help)
}

/// The checks every command gets, whoever runs it. Returns a description of what was
/// checked, or an error naming the page and line.
fn check_static(cmd: &DocCommand, xtask: &mut BTreeMap<String, String>) -> Result<String> {
    let w = words(&cmd.text);
    let at = format!("{}:{}", cmd.page, cmd.line);
    let mut checked = Vec::new();
    if w.first().is_some_and(|p| is_lb(p)) {
        let mut argv = w.clone();
        argv[0] = "lb".into();
        if let Err(e) = lb::cli::Cli::try_parse_from(&argv) {
            bail!("{at}: `{}` does not parse: {e}", cmd.text);
        }
        checked.push("parses");
    }
    if w.len() >= 3 && w[0] == "cargo" && w[1] == "xtask" {
        let help = xtask_help(xtask, &w[2]).with_context(|| at.clone())?;
        for opt in w[3..].iter().filter(|a| a.starts_with("--")) {
            let name = opt.split('=').next().unwrap_or(opt);
            ensure!(
                help.contains(name),
                "{at}: `cargo xtask help {}` has no {name}",
                w[2]
            );
        }
        checked.push("xtask options exist");
    }
    for word in &w {
        let base = word.rsplit('/').next().unwrap_or(word);
        if base.starts_with("lb_")
            && base.ends_with(".deb")
            && base.chars().nth(3).is_some_and(|c| c.is_ascii_digit())
        {
            let want = format!("lb_{}-1_", env!("CARGO_PKG_VERSION"));
            ensure!(
                base.starts_with(&want),
                "{at}: {base} is not version {want}"
            );
        }
    }
    if let Runner::RunBy(files) = &cmd.runner {
        let program = w.first().map(|p| p.trim_start_matches("./")).unwrap_or("");
        let mut named = false;
        for f in files {
            let text = std::fs::read_to_string(repo_root().join(f))
                .with_context(|| format!("{at}: run-by={f} does not exist"))?;
            named |= text.contains(&cmd.page)
                || (text.contains(program) && w.get(1).is_none_or(|a| text.contains(a.as_str())));
        }
        ensure!(
            named,
            "{at}: run-by={}, but none of them names {} or `{}`",
            files.join(","),
            cmd.page,
            cmd.text
        );
        checked.push("runner named");
    }
    Ok(checked.join(", "))
}

#[test]
fn every_doc_command_is_marked_and_parses() -> Result<()> {
    let mut xtask = BTreeMap::new();
    let mut total = 0;
    let mut by_runner: BTreeMap<&str, usize> = BTreeMap::new();
    let mut lb_commands = 0;
    for page in pages()? {
        let text = std::fs::read_to_string(repo_root().join(&page))?;
        let parsed = parse_page(&page, &text)?;
        for cmd in &parsed.commands {
            let what = check_static(cmd, &mut xtask)?;
            total += 1;
            if what.contains("parses") {
                lb_commands += 1;
            }
            *by_runner
                .entry(match cmd.runner {
                    Runner::Sandbox(_) => "run here",
                    Runner::RunBy(_) => "run by another test",
                    Runner::NoRun => "norun",
                })
                .or_default() += 1;
        }
        for path in parsed.files.keys() {
            ensure!(
                path == "/etc/lb/lb.toml",
                "{page}: file={path}: only /etc/lb/lb.toml is supported"
            );
        }
    }
    println!(
        "{total} documented commands, {lb_commands} of them lb commands (all parse): {by_runner:?}"
    );
    ensure!(
        total >= 40,
        "too few commands found ({total}): is the parser broken?"
    );
    ensure!(
        by_runner.get("run here").copied().unwrap_or(0) >= 20,
        "{by_runner:?}"
    );
    Ok(())
}

/// `lb --help` and the docs agree: every visible subcommand is shown as `lb <name>` in
/// README.md or docs/*.md.
#[test]
fn every_lb_subcommand_is_documented() -> Result<()> {
    use clap::CommandFactory;
    let mut all = String::new();
    for page in pages()? {
        all.push_str(&std::fs::read_to_string(repo_root().join(page))?);
    }
    let cmd = lb::cli::Cli::command();
    let missing: Vec<&str> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.get_name())
        .filter(|name| !all.contains(&format!("lb {name}")))
        .collect();
    ensure!(
        missing.is_empty(),
        "subcommands no doc mentions: {missing:?}"
    );
    Ok(())
}

/// A `bash` on one sandbox host, fed commands on stdin.
struct Shell {
    name: String,
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    seq: u64,
    daemons: Vec<(u32, String, PathBuf)>,
}

impl Shell {
    fn start(name: &str, ns: &Netns, bin: &Path, work: &Path) -> Result<Shell> {
        let mut cmd = ns.command_net_only("unshare")?;
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "bash",
            "--noprofile",
            "--norc",
        ])
        .current_dir(work)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0);
        use std::os::unix::process::CommandExt;
        let mut child = cmd.spawn().context("starting the sandbox shell")?;
        let stdin = child.stdin.take().context("shell stdin")?;
        let stdout = child.stdout.take().context("shell stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut shell = Shell {
            name: name.to_string(),
            child,
            stdin,
            lines: rx,
            seq: 0,
            daemons: Vec::new(),
        };
        let (rc, out) = shell.run(&format!(
            "exec 2>&1; mkdir -p /run/lb && mount -t tmpfs lbdocs /run/lb && \
             mount -t bpf lbdocs /sys/fs/bpf && export PATH={}:$PATH",
            bin.display()
        ))?;
        ensure!(rc == 0, "sandbox setup on {name}: {out}");
        Ok(shell)
    }

    /// Runs one command line; returns its exit code and output.
    fn run(&mut self, cmd: &str) -> Result<(i32, String)> {
        self.seq += 1;
        let marker = format!("__LB_DOC_RC_{}__", self.seq);
        writeln!(
            self.stdin,
            "{{ {cmd}\n}} </dev/null; __rc=$?; echo; echo \"{marker} $__rc\""
        )?;
        self.stdin.flush()?;
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rc) = line.strip_prefix(&format!("{marker} ")) {
                        if out.last().is_some_and(|l: &String| l.is_empty()) {
                            out.pop();
                        }
                        return Ok((rc.trim().parse().unwrap_or(-1), out.join("\n")));
                    }
                    out.push(line);
                }
                Err(RecvTimeoutError::Timeout) => {
                    bail!(
                        "`{cmd}` on {} did not finish in {COMMAND_TIMEOUT:?}",
                        self.name
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    bail!(
                        "the {} shell exited during `{cmd}`:\n{}",
                        self.name,
                        out.join("\n")
                    )
                }
            }
        }
    }

    /// Starts a serving command in the background and waits for its ready line.
    fn start_daemon(&mut self, cmd: &str, ready: &str, log: &Path) -> Result<()> {
        let (rc, out) = self.run(&format!(
            "{cmd} </dev/null >{} 2>&1 & echo $!",
            log.display()
        ))?;
        ensure!(rc == 0, "starting `{cmd}`: {out}");
        let pid: u32 = out
            .trim()
            .parse()
            .with_context(|| format!("pid of `{cmd}`: {out}"))?;
        self.daemons.push((pid, cmd.to_string(), log.to_path_buf()));
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if text.contains(ready) {
                return Ok(());
            }
            let (_, alive) = self.run(&format!("kill -0 {pid} && echo alive"))?;
            ensure!(
                alive.contains("alive"),
                "`{cmd}` exited before {ready:?}:\n{text}"
            );
            ensure!(
                Instant::now() < deadline,
                "`{cmd}` did not print {ready:?} within {READY_TIMEOUT:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM to every daemon, newest first; each must exit 0.
    fn stop_daemons(&mut self) -> Result<()> {
        while let Some((pid, cmd, log)) = self.daemons.pop() {
            let (_, out) = self.run(&format!("kill -TERM {pid}; wait {pid}; echo \"exit=$?\""))?;
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            ensure!(
                out.contains("exit=0"),
                "`{cmd}` after SIGTERM: {out}\n{log}"
            );
            println!("stopped `{cmd}`: exit 0");
        }
        Ok(())
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        for (pid, _, _) in &self.daemons {
            // SAFETY: plain syscall on a process this shell started.
            unsafe { libc::kill(*pid as libc::pid_t, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The packaged example config with every `#key = value` line uncommented.
fn packaged_examples() -> Result<String> {
    let text = std::fs::read_to_string(repo_root().join("lb-userspace/packaging/lb.toml"))?;
    Ok(text
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if !rest.is_empty() && !rest.starts_with([' ', '#', '!']) => rest,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

/// The ready line of a serving `lb` command (`lb run`, `lb decap`), if it is one.
fn ready_line(words: &[String]) -> Option<&'static str> {
    if !words.first().is_some_and(|p| is_lb(p)) {
        return None;
    }
    match lb::cli::Cli::try_parse_from(words).ok()?.command {
        lb::cli::Command::Run { .. } => Some("XDP attached"),
        lb::cli::Command::Decap { .. } => Some("decap attached"),
        _ => None,
    }
}

/// The `lb_*` map names in the first column of a page's map table.
fn documented_maps(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| l.starts_with("| `lb_"))
        .flat_map(|l| {
            let cell = l.split('|').nth(1).unwrap_or("");
            cell.split('`')
                .filter(|w| w.starts_with("lb_"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Runs a page's sandbox commands; returns how many ran.
fn run_page(page: &str, parsed: &Page) -> Result<usize> {
    let commands: Vec<&DocCommand> = parsed
        .commands
        .iter()
        .filter(|c| matches!(c.runner, Runner::Sandbox(_)))
        .collect();
    if commands.is_empty() {
        return Ok(0);
    }
    println!("== {page}: {} commands", commands.len());
    let work = tempfile::tempdir()?;
    let bin = work.path().join("bin");
    std::fs::create_dir(&bin)?;
    std::os::unix::fs::symlink(require::lb_bin().canonicalize()?, bin.join("lb"))?;
    let config = work.path().join("lb.toml");
    let config_text = match parsed.files.get("/etc/lb/lb.toml") {
        Some(t) => t.clone(),
        None => packaged_examples()?,
    };
    std::fs::write(&config, config_text)?;

    let topo = Topology::builder("docs").hosts(3).subnet(0).build()?;
    let extra: [(usize, &[&str]); 3] = [
        (0, &["198.18.0.10/24"]),
        (1, &["198.18.0.100/24"]),
        (2, &["198.18.0.102/24", "198.18.0.103/24"]),
    ];
    for (i, addrs) in extra {
        for a in addrs {
            topo.host(i).ns().add_addr("eth0", a)?;
        }
    }
    let mut shells: BTreeMap<&str, Shell> = BTreeMap::new();
    for (i, name) in ["client", "lb", "backend"].into_iter().enumerate() {
        shells.insert(
            name,
            Shell::start(name, topo.host(i).ns(), &bin, work.path())?,
        );
    }

    let config_path = config.display().to_string();
    let mut logs = 0;
    for cmd in &commands {
        let Runner::Sandbox(host) = &cmd.runner else {
            continue;
        };
        let shell = shells.get_mut(host.as_str()).context("sandbox host")?;
        let line = cmd.text.replace("/etc/lb/lb.toml", &config_path);
        let at = format!("{}:{}", cmd.page, cmd.line);
        match ready_line(&words(&cmd.text)) {
            Some(ready) => {
                logs += 1;
                let log = work.path().join(format!("daemon{logs}.log"));
                shell
                    .start_daemon(&line, ready, &log)
                    .with_context(|| at.clone())?;
                println!("[{host}] $ {} &\n  ({ready})", cmd.text);
            }
            None => {
                let (rc, out) = shell.run(&line).with_context(|| at.clone())?;
                let head: Vec<&str> = out.lines().take(3).collect();
                println!("[{host}] $ {}\n  {}", cmd.text, head.join("\n  "));
                ensure!(rc == 0, "{at}: `{}` exited {rc}:\n{out}", cmd.text);
            }
        }
    }

    // The page's map table names exactly the maps a running instance pins.
    let text = std::fs::read_to_string(repo_root().join(page))?;
    let documented = documented_maps(&text);
    if !documented.is_empty() {
        let lb = shells.get_mut("lb").context("lb host")?;
        let (rc, out) = lb.run("ls /sys/fs/bpf/lb/default")?;
        ensure!(rc == 0, "no pins of the default instance: {out}");
        let pinned: BTreeSet<String> = out.split_whitespace().map(str::to_string).collect();
        ensure!(
            pinned == documented,
            "{page}: the map table names {documented:?}, the instance pins {pinned:?}"
        );
        println!("{page}: map table = pinned maps ({} maps)", pinned.len());
    }

    for shell in shells.values_mut() {
        shell.stop_daemons()?;
    }
    Ok(commands.len())
}

#[test]
fn doc_commands_run_in_a_sandbox() -> Result<()> {
    if !require::privileged("doc_commands_run_in_a_sandbox") {
        return Ok(());
    }
    for program in ["bpftool", "ethtool", "nft", "unshare"] {
        if !require::program(program) {
            return Ok(());
        }
    }
    let mut ran = 0;
    for page in pages()? {
        let text = std::fs::read_to_string(repo_root().join(&page))?;
        ran += run_page(&page, &parse_page(&page, &text)?)?;
    }
    println!("{ran} documented commands ran");
    ensure!(ran >= 20, "only {ran} commands ran");
    Ok(())
}

#[test]
fn the_parser_follows_the_convention() -> Result<()> {
    let page = "```sh\nlb check --config a.toml   # check\nls \\\n  -l\n```\n\
                ```console run-by=x.rs\n$ lb import h.cfg > out.toml\noutput\n```\n\
                ```sh norun\nsystemctl restart lb\n```\n\
                ```sh host=backend\nip addr\n```\n\
                ```toml file=/etc/lb/lb.toml\n[xdp]\n```\n";
    let p = parse_page("t.md", page)?;
    let got: Vec<(&str, &Runner)> = p
        .commands
        .iter()
        .map(|c| (c.text.as_str(), &c.runner))
        .collect();
    assert_eq!(
        got,
        vec![
            ("lb check --config a.toml", &Runner::Sandbox("lb".into())),
            ("ls   -l", &Runner::Sandbox("lb".into())),
            (
                "lb import h.cfg > out.toml",
                &Runner::RunBy(vec!["x.rs".into()])
            ),
            ("systemctl restart lb", &Runner::NoRun),
            ("ip addr", &Runner::Sandbox("backend".into())),
        ]
    );
    assert_eq!(p.files["/etc/lb/lb.toml"], "[xdp]\n");
    assert!(parse_page("t.md", "```\n$ lb check\n```\n").is_err());
    assert!(parse_page("t.md", "```sh no-run\nls\n```\n").is_err());
    assert_eq!(
        words("LB_LOG=debug lb run --config 'a b.toml' 2>&1 | tee x"),
        ["lb", "run", "--config", "a b.toml"]
    );
    assert_eq!(words("lb show stat > out 2>err"), ["lb", "show", "stat"]);
    assert_eq!(
        ready_line(&words("lb decap --interface eth0 --vip 198.18.0.97")),
        Some("decap attached")
    );
    assert_eq!(
        ready_line(&words("LB_LOG=debug target/debug/lb run -c x")),
        Some("XDP attached")
    );
    assert_eq!(ready_line(&words("lb check -c x")), None);
    assert!(lb::cli::Cli::try_parse_from(["lb", "run", "--confg", "x"]).is_err());
    Ok(())
}
