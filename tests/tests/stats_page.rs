//! Issue 6 acceptance: the stats page, `;csv`, `;json` and Prometheus metrics of a daemon
//! started as a user starts it (`lb run --config F`), on the service's own listener.
//!
//! ```text
//!  client 198.18.40.2 --- eth0 lb 198.18.40.1 (+ VIP 198.18.40.99, VRRP MASTER)
//!                         eth1 198.18.41.1 --- webA 198.18.41.2:8000
//!                         eth2 198.18.42.1 --- webB 198.18.42.2:8000
//! ```
//!
//! 1. 401 without or with wrong credentials, 200 with each configured user; admin
//!    actions refused without auth, without or with a wrong form token and from another
//!    origin; an accepted one really drains the server (`lb show servers state`, CSV).
//! 2. The CSV header is HAProxy 2.6's (taken from a real haproxy when installed, else the
//!    list below); CSV, JSON, Prometheus and `lb show stat` agree; N requests -> the
//!    servers' `stot` grows by N; `bin` counts what clients sent.
//! 3. The Prometheus text parses with the `prometheus-parse` crate.
//! 4. Headless Chromium renders the page to target/test-output/stats/stats_page.png; the
//!    HTML names both servers and the VRRP role.

use anyhow::{bail, ensure, Context, Result};
use lb_tests::{
    daemon::{lb, Daemon, Instance},
    http_backend::Backend,
    netns::{veth_pair, wait_for, Netns, NsProcess},
    require,
};
use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

const VIP: &str = "198.18.40.99";
const WEB_A: &str = "198.18.41.2";
const WEB_B: &str = "198.18.42.2";
const BACKEND_PORT: u16 = 8000;
const IO_TIMEOUT: Duration = Duration::from_secs(5);
const USER: &str = "someuser";
const PASS: &str = "somepassword";
const STATS: &str = "/haproxy?stats";

/// HAProxy 2.6's `show stat` columns through `uweight` (from `haproxy -v` 2.6.12's
/// `;csv`), used when no haproxy binary is installed to ask.
const HAPROXY_26_COLUMNS: &str = "pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight";

// ---------------------------------------------------------------------------------------

struct Lab {
    client: Netns,
    lb: Netns,
    a: Netns,
    b: Netns,
    inst: Instance,
}

impl Lab {
    fn new(prefix: &str) -> Result<Lab> {
        let client = Netns::new(&format!("{prefix}c"))?;
        let lb = Netns::new(&format!("{prefix}lb"))?;
        let a = Netns::new(&format!("{prefix}a"))?;
        let b = Netns::new(&format!("{prefix}b"))?;
        veth_pair(&client, &lb, "eth0", "eth0")?;
        veth_pair(&lb, &a, "eth1", "eth0")?;
        veth_pair(&lb, &b, "eth2", "eth0")?;
        client.add_addr("eth0", "198.18.40.2/24")?;
        lb.add_addr("eth0", "198.18.40.1/24")?;
        lb.add_addr("eth1", "198.18.41.1/24")?;
        lb.add_addr("eth2", "198.18.42.1/24")?;
        a.add_addr("eth0", &format!("{WEB_A}/24"))?;
        b.add_addr("eth0", &format!("{WEB_B}/24"))?;
        a.ip(&["route", "add", "default", "via", "198.18.41.1"])?;
        b.ip(&["route", "add", "default", "via", "198.18.42.1"])?;
        for (ns, ifs) in [
            (&client, &["eth0"][..]),
            (&lb, &["eth0", "eth1", "eth2"][..]),
            (&a, &["eth0"][..]),
            (&b, &["eth0"][..]),
        ] {
            for i in ifs {
                ns.wait_link_up(i, IO_TIMEOUT)?;
            }
        }
        Ok(Lab {
            client,
            lb,
            a,
            b,
            inst: Instance::new(prefix),
        })
    }

    /// The seed's webfarm with its stats lines, as `lb import` writes them, plus a
    /// second user, admin buttons, a refresh and metrics; the VIP is moved by VRRP.
    fn config(&self) -> String {
        format!(
            r#"instance = "{inst}"
[xdp]
interface = "eth0"

[[service]]
name = "webfarm"
vip = "{VIP}"
port = 80
mode = "http"

[service.http]
balance = "roundrobin"
cookie = {{ name = "JSESSIONID", mode = "prefix" }}
forwardfor = true
httpclose = true

[service.http.stats]
enable = true
auth = ["{USER}:{PASS}", "ops:other:pw"]
refresh = "10s"
admin = true
prometheus_uri = "/metrics"

[[service.server]]
name = "webA"
address = "{WEB_A}:{BACKEND_PORT}"
cookie = "A"
check = true
inter = "500ms"

[[service.server]]
name = "webB"
address = "{WEB_B}:{BACKEND_PORT}"
cookie = "B"
check = true
inter = "500ms"

[[vrrp]]
name = "webfarm"
interface = "eth0"
vrid = 51
priority = 150
advert_interval = "100ms"
vips = ["{VIP}/24"]
"#,
            inst = self.inst.name()
        )
    }

    fn socket(&self) -> String {
        format!("/run/lb/{}.sock", self.inst.name())
    }
}

/// One HTTP exchange's result.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// curl from the client namespace; `-i` output parsed.
fn curl(lab: &Lab, path: &str, extra: &[&str]) -> Result<Reply> {
    let url = format!("http://{VIP}{path}");
    let mut args = vec!["curl", "-sS", "-i", "-m", "5"];
    args.extend_from_slice(extra);
    args.push(&url);
    let out = lab.client.exec_unchecked(&args)?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").with_context(|| {
        format!(
            "curl {url}: no reply: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .context("status line")?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Reply {
        status,
        headers,
        body: body.to_string(),
    })
}

fn creds() -> String {
    format!("{USER}:{PASS}")
}

fn authed(lab: &Lab, path: &str) -> Result<Reply> {
    let c = creds();
    let r = curl(lab, path, &["-u", &c])?;
    ensure!(
        r.status == 200,
        "GET {path} with credentials: {} {}",
        r.status,
        r.body
    );
    Ok(r)
}

/// One CSV row: column -> value.
type CsvRow = HashMap<String, String>;

/// The CSV as rows of column -> value (header order kept separately).
fn parse_csv(text: &str) -> Result<(Vec<String>, Vec<CsvRow>)> {
    let mut lines = text.lines();
    let header = lines.next().context("empty CSV")?;
    let header = header
        .strip_prefix("# ")
        .context("header must start with '# '")?;
    ensure!(
        header.ends_with(','),
        "HAProxy ends every CSV line with a comma"
    );
    let cols: Vec<String> = header
        .strip_suffix(',')
        .unwrap_or(header)
        .split(',')
        .map(str::to_string)
        .collect();
    let mut rows = Vec::new();
    for l in lines.filter(|l| !l.is_empty()) {
        let l = l
            .strip_suffix(',')
            .context("every CSV line ends with a comma")?;
        let vals: Vec<&str> = l.split(',').collect();
        ensure!(
            vals.len() == cols.len(),
            "row has {} fields, header {}: {l}",
            vals.len(),
            cols.len()
        );
        rows.push(
            cols.iter()
                .cloned()
                .zip(vals.iter().map(|v| v.to_string()))
                .collect(),
        );
    }
    Ok((cols, rows))
}

fn row<'a>(rows: &'a [HashMap<String, String>], sv: &str) -> Result<&'a HashMap<String, String>> {
    rows.iter()
        .find(|r| r["pxname"] == "webfarm" && r["svname"] == sv)
        .with_context(|| format!("no CSV row webfarm/{sv}"))
}

fn num(r: &HashMap<String, String>, col: &str) -> Result<u64> {
    r.get(col)
        .with_context(|| format!("no column {col}"))?
        .parse()
        .with_context(|| format!("{col} = {:?} is not a number", r[col]))
}

/// HAProxy 2.6's CSV header, from a real haproxy in `ns` when installed.
fn haproxy_header(ns: &Netns, dir: &Path) -> Result<(Vec<String>, &'static str)> {
    if require::find_program("haproxy").is_none() {
        return Ok((
            HAPROXY_26_COLUMNS.split(',').map(str::to_string).collect(),
            "the list in this test",
        ));
    }
    let version = String::from_utf8_lossy(
        &std::process::Command::new("haproxy")
            .arg("-v")
            .output()?
            .stdout,
    )
    .into_owned();
    ensure!(
        version.contains("version 2.6"),
        "haproxy is not 2.6: {version}"
    );
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(
        &cfg,
        "defaults\n  mode http\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n\
         listen webfarm\n  bind 127.0.0.1:8404\n  stats enable\n  stats auth a:b\n\
         \x20 server webA 127.0.0.1:9\n",
    )?;
    let mut cmd = ns.command("haproxy");
    cmd.arg("-db").arg("-f").arg(&cfg);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _haproxy = NsProcess::spawn(cmd)?;
    let mut csv = String::new();
    wait_for(
        || {
            ns.exec(&[
                "curl",
                "-s",
                "-m",
                "2",
                "-u",
                "a:b",
                "http://127.0.0.1:8404/haproxy?stats;csv",
            ])
            .map(|o| csv = String::from_utf8_lossy(&o.stdout).into_owned())
            .is_ok()
                && csv.starts_with("# pxname")
        },
        IO_TIMEOUT,
    )
    .context("haproxy's stats page")?;
    let header = csv.lines().next().unwrap_or_default();
    Ok((
        header
            .trim_start_matches("# ")
            .trim_end_matches(',')
            .split(',')
            .map(str::to_string)
            .collect(),
        "a real HAProxy 2.6",
    ))
}

fn start(lab: &Lab) -> Result<(Daemon, Backend, Backend)> {
    let a = Backend::start(&lab.a, "A", SocketAddr::new(WEB_A.parse()?, BACKEND_PORT))?;
    let b = Backend::start(&lab.b, "B", SocketAddr::new(WEB_B.parse()?, BACKEND_PORT))?;
    let daemon = Daemon::start(&lab.lb, &lab.config())?;
    wait_for(
        || curl(lab, "/", &[]).is_ok_and(|r| r.status == 200),
        Duration::from_secs(10),
    )
    .with_context(|| format!("the VIP answers:\n{}", daemon.log()))?;
    Ok((daemon, a, b))
}

fn admin_post(lab: &Lab, user: Option<&str>, form: &str, extra: &[&str]) -> Result<Reply> {
    let mut args: Vec<&str> = vec!["-X", "POST", "--data", form];
    if let Some(u) = user {
        args.push("-u");
        args.push(u);
    }
    args.extend_from_slice(extra);
    curl(lab, STATS, &args)
}

fn servers_state(lab: &Lab) -> Result<String> {
    let (st, out, err) = lb(&[
        "show",
        "servers",
        "state",
        "webfarm",
        "--socket",
        &lab.socket(),
    ])?;
    ensure!(st.success(), "lb show servers state: {err}");
    Ok(out)
}

/// `srv_admin_state` of a server in `show servers state` (0 ready, 8 drain, 1 maint).
fn admin_state(lab: &Lab, server: &str) -> Result<u32> {
    let out = servers_state(lab)?;
    let line = out
        .lines()
        .find(|l| l.split_whitespace().nth(3) == Some(server))
        .with_context(|| format!("{server} in {out}"))?;
    Ok(line.split_whitespace().nth(6).context("field")?.parse()?)
}

#[test]
fn stats_auth_admin_and_exports_agree() -> Result<()> {
    if !require::privileged("stats_auth_admin_and_exports_agree") || !require::program("curl") {
        return Ok(());
    }
    let lab = Lab::new("sta")?;
    let (daemon, _a, _b) = start(&lab)?;
    ensure!(
        daemon.log().contains(&format!("http://{VIP}:80{STATS}")),
        "the daemon logs the stats page URL:\n{}",
        daemon.log()
    );

    // --- 1. Authentication.
    let r = curl(&lab, STATS, &[])?;
    ensure!(r.status == 401, "no credentials: {}", r.status);
    ensure!(
        r.header("www-authenticate") == Some("Basic realm=\"HAProxy Statistics\""),
        "challenge: {:?}",
        r.headers
    );
    for bad in [
        "someuser:wrong",
        "nobody:somepassword",
        "someuser:",
        "ops:other",
    ] {
        let r = curl(&lab, STATS, &["-u", bad])?;
        ensure!(r.status == 401, "{bad}: {}", r.status);
    }
    for path in ["/metrics", "/haproxy?stats;csv", "/haproxy?stats;json"] {
        ensure!(
            curl(&lab, path, &[])?.status == 401,
            "{path} without credentials"
        );
    }
    let page = authed(&lab, STATS)?;
    ensure!(page.body.contains("webA") && page.body.contains("webB"));
    ensure!(
        page.header("x-frame-options") == Some("DENY")
            && page
                .header("content-security-policy")
                .is_some_and(|c| c.contains("frame-ancestors 'none'")),
        "the admin page cannot be framed: {:?}",
        page.headers
    );
    let r = curl(&lab, STATS, &["-u", "ops:other:pw"])?;
    ensure!(
        r.status == 200,
        "second user (password with a colon): {}",
        r.status
    );
    println!("auth: 401 without/with wrong credentials, 200 for both users");

    // --- 1. Admin actions.
    let token = page
        .body
        .split("name=\"token\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .context("the admin form's token")?
        .to_string();
    ensure!(token.len() == 32, "token {token:?}");
    let form = |t: &str| format!("token={t}&b=webfarm&s=webA&action=drain");
    let c = creds();
    let refused = [
        (
            "no credentials",
            admin_post(&lab, None, &form(&token), &[])?,
            401,
        ),
        (
            "wrong password",
            admin_post(&lab, Some("someuser:x"), &form(&token), &[])?,
            401,
        ),
        (
            "no token",
            admin_post(&lab, Some(&c), "b=webfarm&s=webA&action=drain", &[])?,
            403,
        ),
        (
            "wrong token",
            admin_post(&lab, Some(&c), &form(&"0".repeat(32)), &[])?,
            403,
        ),
        (
            "another origin",
            admin_post(
                &lab,
                Some(&c),
                &form(&token),
                &["-H", "Origin: http://evil.example"],
            )?,
            403,
        ),
        (
            "GET is not an action",
            curl(&lab, &format!("{STATS}&{}", form(&token)), &["-u", &c])?,
            200,
        ),
    ];
    for (what, r, want) in &refused {
        ensure!(r.status == *want, "{what}: {} (want {want})", r.status);
    }
    ensure!(
        admin_state(&lab, "webA")? == 0,
        "refused actions changed nothing"
    );
    let r = admin_post(
        &lab,
        Some(&c),
        &form(&token),
        &["-H", &format!("Origin: http://{VIP}")],
    )?;
    ensure!(r.status == 303, "accepted action: {} {}", r.status, r.body);
    ensure!(r.header("location") == Some("/haproxy?stats;st=DONE"));
    ensure!(
        admin_state(&lab, "webA")? == 8,
        "webA is draining:\n{}",
        servers_state(&lab)?
    );
    let (_, rows) = parse_csv(&authed(&lab, "/haproxy?stats;csv")?.body)?;
    ensure!(
        row(&rows, "webA")?["status"] == "DRAIN",
        "CSV: {:?}",
        row(&rows, "webA")?["status"]
    );
    let r = admin_post(&lab, Some(&c), &form(&token).replace("drain", "ready"), &[])?;
    ensure!(
        r.status == 303 && admin_state(&lab, "webA")? == 0,
        "ready again"
    );
    println!(
        "admin: refused {} ways (401/403), drain accepted (303, srv_admin_state 8, CSV DRAIN), ready restores",
        refused.len() - 1
    );

    // --- 2. CSV header against HAProxy 2.6.
    let dir = tempfile::tempdir()?;
    let (hap, source) = haproxy_header(&lab.client, dir.path())?;
    let csv = authed(&lab, "/haproxy?stats;csv")?.body;
    let (cols, _) = parse_csv(&csv)?;
    ensure!(
        cols.len() <= hap.len() && hap[..cols.len()] == cols[..],
        "our columns are not HAProxy 2.6's prefix:\nours {cols:?}\nhaproxy {hap:?}"
    );
    ensure!(cols.last().map(String::as_str) == Some("uweight"));
    println!(
        "CSV header = {source}'s first {} columns (pxname..uweight)",
        cols.len()
    );

    // --- 2. N requests -> stot grows by N; bin counts them.
    let before = parse_csv(&authed(&lab, "/haproxy?stats;csv")?.body)?.1;
    const N: u64 = 20;
    for _ in 0..N {
        let r = curl(&lab, "/page", &[])?;
        ensure!(r.status == 200);
    }
    let after = parse_csv(&authed(&lab, "/haproxy?stats;csv")?.body)?.1;
    let delta = |sv: &str, col: &str| -> Result<u64> {
        Ok(num(row(&after, sv)?, col)? - num(row(&before, sv)?, col)?)
    };
    let servers = delta("webA", "stot")? + delta("webB", "stot")?;
    ensure!(servers == N, "servers' stot grew by {servers}, sent {N}");
    ensure!(delta("BACKEND", "stot")? == N, "BACKEND stot");
    // The frontend also counts the CSV request's own connection.
    ensure!(
        delta("FRONTEND", "stot")? == N + 1,
        "FRONTEND stot {}",
        delta("FRONTEND", "stot")?
    );
    ensure!(delta("FRONTEND", "req_tot")? == N + 1, "FRONTEND req_tot");
    ensure!(delta("webA", "stot")? == N / 2, "roundrobin: half each");
    // `GET /page HTTP/1.1` + Host + User-Agent + Accept: well over 50 bytes each.
    ensure!(
        delta("FRONTEND", "bin")? >= N * 50,
        "FRONTEND bin {}",
        delta("FRONTEND", "bin")?
    );
    ensure!(delta("webA", "bin")? >= N / 2 * 50, "webA bin");
    ensure!(delta("webA", "bout")? >= N / 2 * 40, "webA bout");
    ensure!(delta("webA", "hrsp_2xx")? == N / 2);
    println!(
        "{N} requests: servers' stot +{servers}, FRONTEND bin +{} bytes, bout +{} bytes",
        delta("FRONTEND", "bin")?,
        delta("FRONTEND", "bout")?
    );

    // --- 2. CSV, JSON, Prometheus and `lb show stat` agree (no traffic in between).
    let csv_rows = parse_csv(&authed(&lab, "/haproxy?stats;csv")?.body)?.1;
    let json: serde_json::Value = serde_json::from_str(&authed(&lab, "/haproxy?stats;json")?.body)?;
    let prom_text = authed(&lab, "/metrics")?.body;
    // The page counts the conntrack tables (batched map reads) on every request; this
    // service is HTTP only, so they are empty, and a failed count would leave `xdp` out.
    ensure!(
        json["xdp"]["conntrack_entries"] == 0 && json["xdp_error"].is_null(),
        "conntrack count in the JSON: {} (error {})",
        json["xdp"],
        json["xdp_error"]
    );
    let (st, sock_csv, err) = lb(&["show", "stat", "--socket", &lab.socket()])?;
    ensure!(st.success(), "lb show stat: {err}");
    let sock_rows = parse_csv(&sock_csv)?.1;

    // --- 3. A real parser reads the Prometheus text.
    let scrape = prometheus_parse::Scrape::parse(prom_text.lines().map(|l| Ok(l.to_string())))
        .context("prometheus-parse")?;
    ensure!(
        scrape.samples.len() > 50,
        "{} samples",
        scrape.samples.len()
    );
    let prom = |metric: &str, server: Option<&str>| -> Result<f64> {
        let s = scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == metric
                    && s.labels.get("service") == Some("webfarm")
                    && s.labels.get("server") == server
                    && s.labels.get("code").is_none_or(|c| c == "2xx")
            })
            .with_context(|| format!("no sample {metric} {server:?}"))?;
        Ok(match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => bail!("{metric}: not a plain value"),
        })
    };
    let json_row = |sv: &str| -> Result<&serde_json::Value> {
        json["services"]
            .as_array()
            .context("services")?
            .iter()
            .find(|s| s["name"] == "webfarm")
            .and_then(|s| s["rows"].as_array())
            .and_then(|rows| rows.iter().find(|r| r["stats"]["svname"] == sv))
            .with_context(|| format!("JSON row {sv}"))
    };
    let mut compared = 0;
    for (sv, metric_server, kind) in [
        ("webA", Some("webA"), "server"),
        ("webB", Some("webB"), "server"),
        ("BACKEND", None, "backend"),
    ] {
        for (col, metric) in [
            ("stot", "sessions_total"),
            ("bin", "bytes_in_total"),
            ("bout", "bytes_out_total"),
            ("hrsp_2xx", "http_responses_total"),
            ("weight", "weight"),
        ] {
            let c = num(row(&csv_rows, sv)?, col)?;
            let s = num(row(&sock_rows, sv)?, col)?;
            let j = json_row(sv)?["stats"][col]
                .as_u64()
                .with_context(|| format!("JSON {sv}.{col}"))?;
            let p = prom(&format!("lb_{kind}_{metric}"), metric_server)?;
            ensure!(
                c == j && c == s && c as f64 == p,
                "{sv} {col}: CSV {c}, JSON {j}, show stat {s}, Prometheus {p}"
            );
            compared += 1;
        }
    }
    ensure!(
        prom("lb_server_status", Some("webA")).is_ok(),
        "server status series"
    );
    ensure!(
        json["vrrp"][0]["state"] == "MASTER",
        "JSON VRRP: {}",
        json["vrrp"]
    );
    ensure!(
        json["xdp"]["drops"]
            .as_object()
            .is_some_and(|d| d.contains_key("no_service")),
        "JSON XDP drops: {}",
        json["xdp"]
    );
    let fe_xdp = &json_row("FRONTEND")?["xdp"];
    ensure!(
        fe_xdp["packets"].as_u64().unwrap_or(0) > N,
        "XDP counted the VIP's packets: {fe_xdp}"
    );
    println!(
        "CSV, JSON, Prometheus ({} samples, parsed by prometheus-parse) and lb show stat agree on {compared} figures",
        scrape.samples.len()
    );
    Ok(())
}

/// Stats page requests answered 200, from the httplog lines (`webfarm/<STATS> ... 200`).
fn stats_200(log: &str) -> usize {
    log.lines()
        .filter(|l| {
            l.split_once("webfarm/<STATS> ")
                .is_some_and(|(_, rest)| rest.split_whitespace().nth(1) == Some("200"))
        })
        .count()
}

/// Where the test leaves its screenshot: `target/test-output/stats/`.
fn output_dir() -> Result<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-output/stats");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[test]
fn stats_page_renders_in_headless_chromium() -> Result<()> {
    if !require::privileged("stats_page_renders_in_headless_chromium")
        || !require::program("curl")
        || !require::program("chromium")
    {
        return Ok(());
    }
    let lab = Lab::new("stc")?;
    let (daemon, _a, _b) = start(&lab)?;
    for _ in 0..6 {
        curl(&lab, "/", &[])?;
    }
    // The page as a user sees it: both servers and the node's VRRP role.
    let page = authed(&lab, STATS)?.body;
    for want in [
        "webA",
        "webB",
        "role MASTER",
        ">MASTER<",
        "198.18.40.99",
        "active_up",
    ] {
        ensure!(page.contains(want), "the page shows {want:?}");
    }
    ensure!(
        page.contains("<meta http-equiv=\"refresh\" content=\"10\">"),
        "stats refresh is a meta refresh"
    );
    ensure!(!page.contains("<script"), "works without JavaScript");

    std::thread::sleep(Duration::from_millis(300));
    let served_before = stats_200(&daemon.log());
    let out = output_dir()?;
    let png = out.join("stats_page.png");
    let _ = std::fs::remove_file(&png);
    let profile = tempfile::tempdir()?;
    let url = format!("http://{USER}:{PASS}@{VIP}{STATS};norefresh");
    let t0 = Instant::now();
    let result = lab.client.exec_timeout(
        &[
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            &format!("--user-data-dir={}", profile.path().display()),
            &format!("--screenshot={}", png.display()),
            "--window-size=1400,900",
            &url,
        ],
        Duration::from_secs(90),
    );
    if let Err(e) = &result {
        eprintln!("chromium: {e:#}");
    }
    let bytes =
        std::fs::read(&png).with_context(|| format!("no screenshot at {}", png.display()))?;
    ensure!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let width = u32::from_be_bytes(bytes[16..20].try_into()?);
    let height = u32::from_be_bytes(bytes[20..24].try_into()?);
    ensure!((width, height) == (1400, 900), "PNG is {width}x{height}");
    // A blank or error page compresses to a few KiB; the stats tables do not.
    ensure!(
        bytes.len() > 40_000,
        "screenshot only {} bytes",
        bytes.len()
    );
    // Chromium's request was authenticated and answered with the page, not a 401.
    std::thread::sleep(Duration::from_millis(300));
    let served = stats_200(&daemon.log());
    ensure!(
        served > served_before,
        "no 200 for chromium in the access log:\n{}",
        daemon.log()
    );
    println!(
        "chromium rendered {} ({width}x{height}, {} bytes) in {:?}",
        png.display(),
        bytes.len(),
        t0.elapsed()
    );
    Ok(())
}
