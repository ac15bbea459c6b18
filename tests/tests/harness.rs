//! Tests of the namespace harness itself: links work, names are unique, and nothing is left
//! behind, whether a test ends normally, panics, or a run was killed.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use lb_tests::netns::{self, veth_pair, wait_for, Netns, NsProcess, Topology};
use lb_tests::require;

const PING_TIMEOUT: Duration = Duration::from_secs(2);

fn listed(name: &str) -> bool {
    netns::list()
        .expect("ip netns list")
        .iter()
        .any(|n| n == name)
}

fn alive(pid: u32) -> bool {
    // A reaped process has no /proc entry; a zombie would still count as gone for us.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Asserts `from` reaches `to`, retrying briefly (the first packet may wait for ARP/ND).
fn assert_reaches(from: &Netns, to: IpAddr) {
    let mut last = None;
    let ok = wait_for(
        || match from.ping(to, PING_TIMEOUT) {
            Ok(true) => true,
            Ok(false) => false,
            Err(e) => {
                last = Some(format!("{e:#}"));
                false
            }
        },
        Duration::from_secs(6),
    );
    assert!(
        ok.is_ok(),
        "{} cannot reach {to} (last error: {last:?})",
        from.name()
    );
}

#[test]
fn veth_pair_carries_ipv4_and_ipv6() {
    if !require::privileged("veth_pair_carries_ipv4_and_ipv6") {
        return;
    }
    let a = Netns::new("hvp").unwrap();
    let b = Netns::new("hvp").unwrap();
    veth_pair(&a, &b, "eth0", "eth0").unwrap();
    a.add_addr("eth0", "198.18.1.1/24").unwrap();
    b.add_addr("eth0", "198.18.1.2/24").unwrap();
    a.add_addr("eth0", "2001:db8:0:1::1/64").unwrap();
    b.add_addr("eth0", "2001:db8:0:1::2/64").unwrap();

    assert_reaches(&a, IpAddr::V4(Ipv4Addr::new(198, 18, 1, 2)));
    assert_reaches(&b, IpAddr::V4(Ipv4Addr::new(198, 18, 1, 1)));
    assert_reaches(&a, "2001:db8:0:1::2".parse().unwrap());
    assert_reaches(&b, "2001:db8:0:1::1".parse().unwrap());

    // An address nobody holds does not answer: the ping is a real check.
    assert!(!a
        .ping(
            IpAddr::V4(Ipv4Addr::new(198, 18, 1, 99)),
            Duration::from_millis(300)
        )
        .unwrap());

    // MACs differ and match what the peer learned.
    let mac_a = a.mac("eth0").unwrap();
    let mac_b = netns::mac(&b, "eth0").unwrap();
    assert_ne!(mac_a, mac_b);
    let neigh = b
        .exec_stdout(&["ip", "neigh", "show", "198.18.1.1"])
        .unwrap();
    let shown = format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        mac_a[0], mac_a[1], mac_a[2], mac_a[3], mac_a[4], mac_a[5]
    );
    assert!(neigh.contains(&shown), "neigh {neigh:?} lacks {shown}");

    // The root namespace never saw the pair.
    let root = String::from_utf8(
        std::process::Command::new("ip")
            .args(["-o", "link", "show"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(!root.contains(&format!("t{:x}_", std::process::id())));
}

#[test]
fn bridge_topology_connects_every_host() {
    if !require::privileged("bridge_topology_connects_every_host") {
        return;
    }
    let topo = Topology::builder("hbr")
        .hosts(3)
        .ipv6(true)
        .subnet(7)
        .disable_tx_offload(true)
        .build()
        .unwrap();
    assert_eq!(topo.hosts().len(), 3);
    assert_eq!(topo.host(2).ipv4(), Ipv4Addr::new(198, 18, 7, 3));
    assert_eq!(
        topo.host(0).ipv6(),
        Some("2001:db8:0:7::1".parse::<Ipv6Addr>().unwrap())
    );
    for from in topo.hosts() {
        for to in topo.hosts() {
            if from.ns().name() == to.ns().name() {
                continue;
            }
            assert_reaches(from.ns(), IpAddr::V4(to.ipv4()));
            assert_reaches(from.ns(), IpAddr::V6(to.ipv6().unwrap()));
        }
    }
    let features = topo
        .host(0)
        .ns()
        .exec_stdout(&["ethtool", "-k", "eth0"])
        .unwrap();
    assert!(
        features.contains("tx-checksumming: off"),
        "tx offload still on: {features}"
    );
    let macs: HashSet<_> = topo.hosts().iter().map(|h| h.mac().unwrap()).collect();
    assert_eq!(macs.len(), 3);
}

#[test]
fn bridge_can_live_in_a_host() {
    if !require::privileged("bridge_can_live_in_a_host") {
        return;
    }
    let topo = Topology::builder("hbh")
        .hosts(3)
        .bridge_in_host(0)
        .build()
        .unwrap();
    assert_eq!(topo.host(0).ifname(), "br0");
    assert_eq!(topo.bridge_ns().name(), topo.host(0).ns().name());
    assert_reaches(topo.host(1).ns(), IpAddr::V4(topo.host(0).ipv4()));
    assert_reaches(topo.host(2).ns(), IpAddr::V4(topo.host(1).ipv4()));
}

#[test]
fn dropping_removes_namespaces() {
    if !require::privileged("dropping_removes_namespaces") {
        return;
    }
    let ns = Netns::new("hdrop").unwrap();
    let name = ns.name().to_owned();
    assert!(listed(&name));
    drop(ns);
    assert!(!listed(&name), "{name} still listed after drop");

    let topo = Topology::builder("hdropt").hosts(2).build().unwrap();
    let mut names: Vec<String> = topo
        .hosts()
        .iter()
        .map(|h| h.ns().name().to_owned())
        .collect();
    names.push(topo.bridge_ns().name().to_owned());
    for n in &names {
        assert!(listed(n));
    }
    drop(topo);
    for n in &names {
        assert!(!listed(n), "{n} still listed after dropping the topology");
    }
}

#[test]
fn panic_inside_test_still_cleans_up() {
    if !require::privileged("panic_inside_test_still_cleans_up") {
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let result = std::panic::catch_unwind(move || {
        let ns = Netns::new("hpanic").unwrap();
        let peer = Netns::new("hpanic").unwrap();
        veth_pair(&ns, &peer, "eth0", "eth0").unwrap();
        let sleeper = ns.spawn(&["sleep", "60"]).unwrap();
        tx.send((ns.name().to_owned(), peer.name().to_owned(), sleeper.pid()))
            .unwrap();
        panic!("deliberate panic with namespaces alive");
    });
    assert!(result.is_err());
    let (name, peer, pid) = rx.recv().unwrap();
    assert!(!listed(&name), "{name} survived the panic");
    assert!(!listed(&peer), "{peer} survived the panic");
    assert!(!alive(pid), "process {pid} survived the panic");
}

#[test]
fn failed_setup_cleans_up_half_made_links() {
    if !require::privileged("failed_setup_cleans_up_half_made_links") {
        return;
    }
    let a = Netns::new("hfail").unwrap();
    let b = Netns::new("hfail").unwrap();
    veth_pair(&a, &b, "eth0", "eth0").unwrap();
    // eth0 is taken in `a`: the rename fails and the temporary pair must be deleted.
    let err = veth_pair(&a, &b, "eth0", "eth1").unwrap_err();
    assert!(format!("{err:#}").contains("eth0"), "{err:#}");
    let links_a = a.exec_stdout(&["ip", "-o", "link", "show"]).unwrap();
    let links_b = b.exec_stdout(&["ip", "-o", "link", "show"]).unwrap();
    assert_eq!(links_a.lines().count(), 2, "{links_a}");
    assert_eq!(links_b.lines().count(), 2, "{links_b}");
    // Bad names are refused before anything is created.
    assert!(veth_pair(&a, &b, "a-name-longer-than-15", "x").is_err());
    assert!(Netns::new("bad/prefix").is_err());
}

#[test]
fn exec_reports_failures_with_stderr() {
    if !require::privileged("exec_reports_failures_with_stderr") {
        return;
    }
    let ns = Netns::new("hexec").unwrap();
    let out = ns.exec_stdout(&["sh", "-c", "echo hello"]).unwrap();
    assert_eq!(out.trim(), "hello");
    let err = ns
        .exec(&["ip", "link", "show", "dev", "nosuchif0"])
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("nosuchif0"), "{msg}");
    assert!(msg.contains("does not exist"), "{msg}");
    assert!(!ns.exec_ok(&["false"]));
    assert!(ns.exec_ok(&["true"]));
    let out = ns.exec_unchecked(&["sh", "-c", "exit 3"]).unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = ns
        .exec_timeout(&["sleep", "30"], Duration::from_millis(200))
        .unwrap_err();
    assert!(format!("{err:#}").contains("did not finish"), "{err:#}");
    // Only the namespace's own interfaces are visible inside it.
    let links = ns.exec_stdout(&["ip", "-o", "link", "show"]).unwrap();
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains("lo"));
    ns.sysctl("net.ipv4.ip_forward", "1").unwrap();
    let fwd = ns
        .exec_stdout(&["cat", "/proc/sys/net/ipv4/ip_forward"])
        .unwrap();
    assert_eq!(fwd.trim(), "1");
}

#[test]
fn spawned_process_dies_with_its_handle() {
    if !require::privileged("spawned_process_dies_with_its_handle") {
        return;
    }
    let ns = Netns::new("hspawn").unwrap();
    let mut p = ns.spawn(&["sleep", "60"]).unwrap();
    let pid = p.pid();
    assert!(alive(pid));
    assert!(p.is_running());
    assert_eq!(p.wait_timeout(Duration::from_millis(100)).unwrap(), None);
    wait_for(
        || ns.pids().unwrap().contains(&(pid as i32)),
        Duration::from_secs(5),
    )
    .expect("sleep is inside the namespace");
    drop(p);
    assert!(!alive(pid), "process {pid} survived its handle");

    // A graceful stop reports the signal.
    let mut p = ns.spawn(&["sleep", "60"]).unwrap();
    let status = p.stop(Duration::from_secs(5)).unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGTERM));

    // stdin/stdout are reachable.
    let mut cat = ns.spawn(&["cat"]).unwrap();
    {
        use std::io::{Read, Write};
        cat.stdin().unwrap().write_all(b"ping\n").unwrap();
        drop(cat.take_stdin());
        let mut s = String::new();
        cat.take_stdout().unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "ping\n");
    }
    assert!(cat
        .wait_timeout(Duration::from_secs(5))
        .unwrap()
        .unwrap()
        .success());
}

#[test]
fn spawned_process_dies_with_its_namespace() {
    if !require::privileged("spawned_process_dies_with_its_namespace") {
        return;
    }
    let ns = Netns::new("hnsk").unwrap();
    // A process started without an NsProcess handle: the namespace's Drop must kill it.
    let mut child = ns
        .command("sleep")
        .arg("60")
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_for(
        || ns.pids().unwrap().contains(&(pid as i32)),
        Duration::from_secs(5),
    )
    .expect("sleep is inside the namespace");
    // And one started with setns only (keeps the host's /sys/fs/bpf).
    let mut cmd = ns.command_net_only("sh").unwrap();
    cmd.args([
        "-c",
        "ip -o link show; stat -f -c %T /sys/fs/bpf; exec sleep 60",
    ])
    .stdout(std::process::Stdio::piped());
    let mut netonly = NsProcess::spawn(cmd).unwrap();
    let (mut first, mut second) = (String::new(), String::new());
    {
        use std::io::{BufRead, BufReader};
        let mut out = BufReader::new(netonly.take_stdout().unwrap());
        out.read_line(&mut first).unwrap();
        out.read_line(&mut second).unwrap();
    }
    // Only the namespace's lo is visible, and /sys/fs/bpf is still the host's bpffs.
    assert!(first.contains("lo:"), "{first}");
    assert_eq!(second.trim(), "bpf_fs");
    let netonly_pid = netonly.pid();
    wait_for(
        || ns.pids().unwrap().contains(&(netonly_pid as i32)),
        Duration::from_secs(5),
    )
    .expect("net-only child is inside the namespace");

    drop(ns);
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert!(netonly
        .wait_timeout(Duration::from_secs(5))
        .unwrap()
        .is_some());
}

#[test]
fn names_are_unique() {
    if !require::privileged("names_are_unique") {
        return;
    }
    let names: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let spaces: Vec<Netns> = (0..6).map(|_| Netns::new("huniq").unwrap()).collect();
                    spaces
                        .iter()
                        .map(|n| n.name().to_owned())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let set: HashSet<_> = names.iter().collect();
    assert_eq!(set.len(), names.len(), "duplicate names in {names:?}");
    for n in &names {
        assert!(
            n.starts_with(&format!("huniq-{}-", std::process::id())),
            "{n}"
        );
        assert!(!listed(n), "{n} left behind");
    }
}

/// Deletes a hand-made namespace even if the test fails before the sweep does.
struct Manual(String);

impl Drop for Manual {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .output();
    }
}

#[test]
fn sweep_removes_namespaces_of_dead_processes() {
    if !require::privileged("sweep_removes_namespaces_of_dead_processes") {
        return;
    }
    // A fixed prefix, so that if this run is killed mid-test the next one sweeps it.
    let prefix = "hsweep";
    let live = Netns::new(prefix).unwrap();
    // pid_max itself is never a valid pid, so this "owner" is certainly dead. Our pid goes
    // in the counter field to keep parallel runs of this test apart.
    let pid_max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let stale = Manual(format!("{prefix}-{pid_max}-{}-dead", std::process::id()));
    let out = std::process::Command::new("ip")
        .args(["netns", "add", &stale.0])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(listed(&stale.0));
    let removed = netns::sweep_stale(prefix).unwrap();
    // Another process running this test at the same time may have swept it first.
    assert!(removed.iter().all(|n| n.starts_with(prefix)), "{removed:?}");
    assert!(!listed(&stale.0), "{} survived the sweep", stale.0);
    assert!(listed(live.name()), "a live process's namespace was swept");
}

#[test]
fn require_finds_programs() {
    // No privileges needed: the policy's lookup itself.
    assert!(require::find_program("sh").is_some());
    assert!(require::find_program("/bin/sh").is_some());
    assert!(require::find_program("lb-tests-no-such-program").is_none());
    if std::env::var_os("CI").is_none_or(|v| v.is_empty()) {
        assert!(!require::program("lb-tests-no-such-program"));
    }
    assert!(require::program("sh"));
}
