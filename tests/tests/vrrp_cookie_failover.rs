//! Issue 5, acceptance 3: an HTTP session with a persistence cookie keeps its backend
//! across the failover. lb1 and lb2 proxy the same L7 VIP (cookie `JSESSIONID`, HAProxy's
//! `prefix` mode) to servers A and B; the client gets its cookie from A through lb1, lb1
//! dies, and the same cookie through lb2 is still served by A, while requests without the
//! cookie keep being balanced over both.

mod vrrp_support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Stdio;
use std::time::Duration;

use lb_tests::netns::{wait_for, NsProcess};
use vrrp_support::*;

const SERVER_A: usize = 3;
const SERVER_B: usize = 4;
const BACKEND_PORT: u16 = 8080;
const VIP_PORT: u16 = 80;

/// A backend that answers with its name and starts a session (`Set-Cookie:
/// JSESSIONID=<name>-session`) when the request has none.
fn start_backend(lab: &Lab, i: usize, name: &str) -> NsProcess {
    let script = format!(
        r#"
import http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_GET(self):
        body = b"{name}"
        self.send_response(200)
        if "JSESSIONID" not in (self.headers.get("Cookie") or ""):
            self.send_header("Set-Cookie", "JSESSIONID={name}-session; Path=/")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", {BACKEND_PORT}), H).serve_forever()
"#
    );
    let mut cmd = lab.ns(i).command("python3");
    cmd.args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let p = NsProcess::spawn(cmd).unwrap();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, BACKEND_PORT));
    wait_for(
        || {
            lab.ns(i)
                .run(|| TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok())
                .unwrap_or(false)
        },
        Duration::from_secs(10),
    )
    .unwrap();
    p
}

fn config(lab: &Lab, i: usize, priority: u8) -> String {
    let instance = lab.ns(i).name().replace('.', "_");
    format!(
        r#"instance = "{instance}"
[xdp]
interface = "eth0"

[[service]]
name = "app"
vip = "{vip}"
port = {VIP_PORT}
mode = "http"
[service.http]
cookie = {{ name = "JSESSIONID", mode = "prefix" }}
[[service.server]]
name = "a"
address = "{a}:{BACKEND_PORT}"
cookie = "A"
[[service.server]]
name = "b"
address = "{b}:{BACKEND_PORT}"
cookie = "B"
{vrrp}"#,
        vip = lab.vip(),
        a = lab.host(SERVER_A).ipv4(),
        b = lab.host(SERVER_B).ipv4(),
        vrrp = lab.vrrp_section(priority),
    )
}

/// One GET / through the VIP, with `cookie` if given: (body, Set-Cookie value).
fn get(lab: &Lab, cookie: Option<&str>) -> Option<(String, Option<String>)> {
    let vip = lab.vip();
    let cookie = cookie.map(str::to_string);
    lab.ns(CLIENT)
        .run(move || {
            let addr = SocketAddr::from((vip, VIP_PORT));
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            let mut req = String::from("GET / HTTP/1.0\r\nHost: app\r\n");
            if let Some(c) = &cookie {
                req.push_str(&format!("Cookie: JSESSIONID={c}\r\n"));
            }
            req.push_str("\r\n");
            s.write_all(req.as_bytes()).ok()?;
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).ok()?;
            let text = String::from_utf8_lossy(&buf).into_owned();
            let (head, body) = text.split_once("\r\n\r\n")?;
            if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
                return None;
            }
            let set = head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("set-cookie").then(|| {
                    v.trim()
                        .strip_prefix("JSESSIONID=")
                        .map(|v| v.split(';').next().unwrap_or("").to_string())
                })?
            });
            Some((body.trim().to_string(), set))
        })
        .ok()
        .flatten()
}

#[test]
fn vrrp_cookie_session_keeps_its_server_across_failover() {
    if !can_run(
        "vrrp_cookie_session_keeps_its_server_across_failover",
        &["python3"],
    ) {
        return;
    }
    let mut lab = Lab::new("vcook", 5).unwrap();
    let _a = start_backend(&lab, SERVER_A, "A");
    let _b = start_backend(&lab, SERVER_B, "B");
    let mut d1 = lab.start_lb_config(LB1, &config(&lab, LB1, 150)).unwrap();
    lab.wait_vip(LB1, Duration::from_secs(10)).unwrap();
    let _d2 = lab.start_lb_config(LB2, &config(&lab, LB2, 100)).unwrap();
    wait_state(&lab, LB2, "BACKUP", Duration::from_secs(5)).unwrap();

    // A session with A through lb1: round robin gives A within two new sessions.
    let mut cookie = None;
    for _ in 0..4 {
        if let Some((body, Some(set))) = get(&lab, None) {
            if body == "A" {
                cookie = Some(set);
                break;
            }
        }
    }
    let cookie = cookie.expect("no session with A through lb1");
    println!("cookie from A through lb1: JSESSIONID={cookie}");
    assert!(cookie.starts_with("A~"), "prefix mode: {cookie}");
    let via_lb1: Vec<String> = (0..6)
        .filter_map(|_| get(&lab, Some(&cookie)).map(|r| r.0))
        .collect();
    assert_eq!(via_lb1, vec!["A"; 6], "the session sticks through lb1");

    // lb1 dies (daemon killed, the node off the segment).
    // SAFETY: plain syscall on our child's process group.
    unsafe { libc::kill(-(d1.pid() as i32), libc::SIGKILL) };
    let _ = d1.wait_timeout(Duration::from_secs(5));
    lab.ns(LB1).ip(&["link", "set", "eth0", "down"]).unwrap();
    wait_state(&lab, LB2, "MASTER", Duration::from_secs(5)).unwrap();
    lab.wait_vip(LB2, Duration::from_secs(2)).unwrap();

    let via_lb2: Vec<String> = (0..10)
        .filter_map(|_| get(&lab, Some(&cookie)).map(|r| r.0))
        .collect();
    let fresh: Vec<String> = (0..10)
        .filter_map(|_| get(&lab, None).map(|r| r.0))
        .collect();
    println!("same cookie through lb2: {via_lb2:?}; new sessions through lb2: {fresh:?}");
    assert_eq!(
        via_lb2,
        vec!["A"; 10],
        "the session moved off A after the failover"
    );
    assert!(
        fresh.iter().any(|b| b == "A") && fresh.iter().any(|b| b == "B"),
        "lb2 balances new sessions over both: {fresh:?}"
    );
    // Served by lb2: lb1's link is down (its killed daemon left the VIP on it).
    assert!(lab.holds_vip(LB2));
    assert!(lab.lb_log(LB2).contains("MASTER"));
}
