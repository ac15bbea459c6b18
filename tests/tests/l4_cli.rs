//! `lb explain` prints the backend the XDP program would pick for a new flow (the same
//! Maglev table and flow hash), and `lb check` accepts L4 configs. No privileges needed.

use lb::{config, maglev};
use lb_tests::daemon::{lb, ConfigFile};
use std::net::SocketAddr;

const CONFIG: &str = r#"
[xdp]
interface = "eth0"
[l4]
ipip_source_v6 = "2001:db8:ffff::/112"
[[service]]
name = "web"
vip = "198.18.0.100"
port = 80
mode = "dsr"
[[service.server]]
name = "a"
address = "198.18.0.11"
[[service.server]]
name = "b"
address = "198.18.0.12"
weight = 2
[[service.server]]
name = "c"
address = "198.18.0.13"
[[service]]
name = "web6"
vip = "2001:db8::100"
port = 443
protocol = "udp"
mode = "ipip"
[[service.server]]
name = "x"
address = "2001:db8::11"
[[service.server]]
name = "y"
address = "2001:db8::12"
"#;

fn expected(cfg: &config::Config, svc: usize, client: SocketAddr, proto: u8) -> String {
    let s = &cfg.services[svc];
    let mb: Vec<maglev::MaglevBackend> = s
        .backends
        .iter()
        .enumerate()
        .map(|(i, b)| {
            maglev::MaglevBackend::from_addr(i as u32, b.weight, SocketAddr::new(b.addr, 0))
        })
        .collect();
    let table = maglev::build_table(s.table_size, &mb).unwrap();
    let pick = maglev::explain(
        &table,
        client,
        SocketAddr::new(s.vip.addr, s.vip.port),
        proto,
    );
    s.backends[pick.backend as usize].name.clone()
}

#[test]
fn explain_matches_the_maglev_prediction() {
    let file = ConfigFile::new(CONFIG).unwrap();
    let path = file.path().to_str().unwrap();
    let cfg = config::load(file.path()).unwrap();
    for (svc, vip, proto, clients) in [
        (
            0,
            "198.18.0.100:80",
            "tcp",
            ["198.18.1.7:40000", "198.18.1.8:1234", "198.18.9.9:65535"],
        ),
        (
            1,
            "[2001:db8::100]:443",
            "udp",
            [
                "[2001:db8:1::7]:40000",
                "[2001:db8:1::8]:5353",
                "[2001:db8:2::1]:1",
            ],
        ),
    ] {
        for client in clients {
            let (status, out, err) = lb(&[
                "explain",
                "--config",
                path,
                "--client",
                client,
                "--vip",
                vip,
                "--protocol",
                proto,
            ])
            .unwrap();
            assert!(status.success(), "lb explain failed: {err}");
            let num = if proto == "tcp" { 6 } else { 17 };
            let want = expected(&cfg, svc, client.parse().unwrap(), num);
            assert!(
                out.contains(&format!("server {want} (")),
                "explain for {client} -> {vip}: {out:?}, expected server {want}"
            );
        }
    }
    let (status, _, err) = lb(&[
        "explain",
        "--config",
        path,
        "--client",
        "198.18.1.7:1",
        "--vip",
        "198.18.0.100:81",
    ])
    .unwrap();
    assert!(!status.success() && err.contains("no service"), "{err}");
    let (status, out, err) = lb(&["check", "--config", path]).unwrap();
    assert!(status.success(), "lb check: {out}{err}");
}
