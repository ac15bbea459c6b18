//! Server + client round trips on sockets in private temp directories.

use super::{
    client::{request, ClientError, Reply},
    protocol::{AdminCommand, ServerRef, Weight, HELP, MAX_LINE},
    server::{AdminError, AdminHandler, AdminOptions, AdminServer, AdminServerError, BoxFuture},
};
use std::{
    io::{Read, Write},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio::sync::watch;

/// A directory under the system temp dir, removed on drop (short path: sun_path is 108).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "lbadm-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn sock(&self) -> PathBuf {
        self.0.join("admin.sock")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Knows one server, `webfarm/webA`; counts the commands it receives.
struct Mock {
    calls: AtomicUsize,
    delay: Duration,
}

impl AdminHandler for Mock {
    fn handle(&self, cmd: AdminCommand) -> BoxFuture<'_, Result<String, AdminError>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            let known = |s: &ServerRef| s.service == "webfarm" && s.server == "webA";
            match cmd {
                AdminCommand::ShowStat(_) => {
                    Ok("# pxname,svname,status\nwebfarm,webA,UP\n\n".into())
                }
                AdminCommand::SetWeight(s, Weight::Absolute(w)) if known(&s) => {
                    Ok(format!("weight {w}"))
                }
                AdminCommand::SetWeight(..) | AdminCommand::SetState(..) => {
                    Err(AdminError::NoSuchServer)
                }
                AdminCommand::Reload => Err(AdminError::Failed("config.toml:3:1: bad key".into())),
                _ => Ok(String::new()),
            }
        })
    }
}

fn mock(delay_ms: u64) -> Arc<Mock> {
    Arc::new(Mock {
        calls: AtomicUsize::new(0),
        delay: Duration::from_millis(delay_ms),
    })
}

async fn start(
    path: &Path,
    handler: Arc<Mock>,
    options: AdminOptions,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let server = AdminServer::bind(path, options).expect("bind");
    let (tx, rx) = watch::channel(false);
    let h = tokio::spawn(server.serve(handler, rx));
    (tx, h)
}

async fn ask(path: &Path, cmd: &str) -> Result<Reply, ClientError> {
    let path = path.to_path_buf();
    let cmd = cmd.to_string();
    tokio::task::spawn_blocking(move || request(&path, &cmd, Duration::from_secs(5)))
        .await
        .unwrap()
}

#[tokio::test]
async fn round_trip_and_errors_change_nothing() {
    let dir = TempDir::new();
    let path = dir.sock();
    let handler = mock(0);
    let (stop, h) = start(&path, Arc::clone(&handler), AdminOptions::default()).await;

    assert_eq!(
        ask(&path, "show stat").await.unwrap(),
        Reply::Ok("# pxname,svname,status\nwebfarm,webA,UP\n".into())
    );
    assert_eq!(
        ask(&path, "set weight webfarm/webA 5").await.unwrap(),
        Reply::Ok("weight 5\n".into())
    );
    assert_eq!(
        ask(&path, "show vrrp").await.unwrap(),
        Reply::Ok(String::new())
    );
    assert_eq!(
        ask(&path, "set weight webfarm/nope 5").await.unwrap(),
        Reply::Error("No such server.".into())
    );
    assert_eq!(
        ask(&path, "reload").await.unwrap(),
        Reply::Error("config.toml:3:1: bad key".into())
    );
    assert_eq!(handler.calls.load(Ordering::SeqCst), 5);

    // Parse errors, help: answered by the server, never reach the handler.
    assert_eq!(
        ask(&path, "foo").await.unwrap(),
        Reply::Error("Unknown command 'foo'. Try 'help'.".into())
    );
    assert_eq!(
        ask(&path, "set server webA state drain").await.unwrap(),
        Reply::Error("Require 'backend/server'.".into())
    );
    assert_eq!(
        ask(&path, "help").await.unwrap(),
        Reply::Ok(format!("{HELP}\n"))
    );
    assert_eq!(handler.calls.load(Ordering::SeqCst), 5);

    // Client-side refusals.
    assert!(matches!(
        ask(&path, "show stat\nreload").await,
        Err(ClientError::InvalidCommand(_))
    ));
    assert!(matches!(
        ask(&path, "  ").await,
        Err(ClientError::InvalidCommand(_))
    ));

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), h)
        .await
        .unwrap()
        .unwrap();
    assert!(!path.exists(), "socket file removed on shutdown");
}

#[tokio::test]
async fn several_commands_per_connection() {
    let dir = TempDir::new();
    let path = dir.sock();
    let (_stop, _h) = start(&path, mock(0), AdminOptions::default()).await;
    let p = path.clone();
    let out = tokio::task::spawn_blocking(move || {
        let mut s = std::os::unix::net::UnixStream::connect(&p).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"show vrrp\n\n   \nbogus\r\nset weight webfarm/webA 3\nquit\nshow stat\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
    .await
    .unwrap();
    // Blank lines get no answer; `quit` closes before `show stat`.
    assert_eq!(
        out,
        "\nERR Unknown command 'bogus'. Try 'help'.\n\nweight 3\n\n"
    );
}

#[tokio::test]
async fn socket_mode_is_0600_by_default() {
    let dir = TempDir::new();
    let path = dir.sock();
    let (_stop, _h) = start(&path, mock(0), AdminOptions::default()).await;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // No leftover private directory next to it.
    let names: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("admin.sock")]);

    let path2 = dir.0.join("group.sock");
    let opts = AdminOptions {
        mode: 0o660,
        ..AdminOptions::default()
    };
    let (_stop2, _h2) = start(&path2, mock(0), opts).await;
    assert_eq!(
        std::fs::metadata(&path2).unwrap().permissions().mode() & 0o777,
        0o660
    );
}

#[tokio::test]
async fn oversized_line_gets_an_error_and_the_server_lives_on() {
    let dir = TempDir::new();
    let path = dir.sock();
    let handler = mock(0);
    let (_stop, _h) = start(&path, Arc::clone(&handler), AdminOptions::default()).await;
    let p = path.clone();
    let out = tokio::task::spawn_blocking(move || {
        let mut s = std::os::unix::net::UnixStream::connect(&p).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // Oversized, in several writes; then a normal command on the same connection.
        for _ in 0..3 {
            s.write_all(&vec![b'a'; MAX_LINE]).unwrap();
        }
        s.write_all(b"\nshow vrrp\nquit\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
    .await
    .unwrap();
    assert_eq!(out, "ERR Command line too long (max 4096 bytes).\n\n\n");
    // A line with no end in sight (over 1 MiB) closes the connection after the error.
    let p = path.clone();
    let out = tokio::task::spawn_blocking(move || {
        let mut s = std::os::unix::net::UnixStream::connect(&p).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let chunk = vec![b'b'; 64 * 1024];
        for _ in 0..40 {
            if s.write_all(&chunk).is_err() {
                break;
            }
        }
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    })
    .await
    .unwrap();
    assert_eq!(out, "ERR Command line too long (max 4096 bytes).\n\n");
    // Exactly MAX_LINE is fine (it is just an unknown command).
    let exact = "x".repeat(MAX_LINE);
    assert!(
        matches!(ask(&path, &exact).await.unwrap(), Reply::Error(e) if e.starts_with("Unknown command"))
    );
    assert_eq!(handler.calls.load(Ordering::SeqCst), 1);
    assert!(matches!(
        ask(&path, "show stat").await.unwrap(),
        Reply::Ok(_)
    ));
}

#[tokio::test]
async fn stale_live_and_foreign_files() {
    let dir = TempDir::new();
    let path = dir.sock();
    // A stale socket: bound then abandoned (the file stays, nobody listens).
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let (stop, h) = start(&path, mock(0), AdminOptions::default()).await;
    assert!(matches!(
        ask(&path, "show stat").await.unwrap(),
        Reply::Ok(_)
    ));

    // A live socket is not stolen.
    match AdminServer::bind(&path, AdminOptions::default()) {
        Err(AdminServerError::InUse { .. }) => {}
        other => panic!("expected InUse, got {other:?}"),
    }
    assert!(matches!(
        ask(&path, "show stat").await.unwrap(),
        Reply::Ok(_)
    ));
    stop.send(true).unwrap();
    h.await.unwrap();

    // A regular file is never removed.
    let file = dir.0.join("notes.txt");
    std::fs::write(&file, "keep me").unwrap();
    match AdminServer::bind(&file, AdminOptions::default()) {
        Err(AdminServerError::NotASocket { .. }) => {}
        other => panic!("expected NotASocket, got {other:?}"),
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
}

#[tokio::test]
async fn concurrent_clients_and_the_client_limit() {
    let dir = TempDir::new();
    let path = dir.sock();
    let handler = mock(100);
    let (_stop, _h) = start(&path, Arc::clone(&handler), AdminOptions::default()).await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..8u32 {
        let p = path.clone();
        set.spawn(async move { (i, ask(&p, &format!("set weight webfarm/webA {i}")).await) });
    }
    let mut n = 0;
    while let Some(r) = set.join_next().await {
        let (i, reply) = r.unwrap();
        assert_eq!(reply.unwrap(), Reply::Ok(format!("weight {i}\n")));
        n += 1;
    }
    assert_eq!(n, 8);

    // With room for one client, a second concurrent one is told to come back later.
    let path2 = dir.0.join("one.sock");
    let opts = AdminOptions {
        max_clients: 1,
        ..AdminOptions::default()
    };
    let (_stop2, _h2) = start(&path2, mock(500), opts).await;
    let p = path2.clone();
    let slow = tokio::spawn(async move { ask(&p, "show stat").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        ask(&path2, "show stat").await.unwrap(),
        Reply::Error("Too many admin connections; try again later.".into())
    );
    assert!(matches!(slow.await.unwrap().unwrap(), Reply::Ok(_)));
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let dir = TempDir::new();
    let path = dir.sock();
    let opts = AdminOptions {
        idle_timeout: Duration::from_millis(100),
        ..AdminOptions::default()
    };
    let (_stop, _h) = start(&path, mock(0), opts).await;
    let p = path.clone();
    let n = tokio::task::spawn_blocking(move || {
        let mut s = std::os::unix::net::UnixStream::connect(&p).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 16];
        s.read(&mut b).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(n, 0, "server closed the idle connection");
}

#[test]
fn client_errors_explain_what_to_do() {
    let dir = TempDir::new();
    let path = dir.0.join("missing.sock");
    let e = request(&path, "show stat", Duration::from_secs(1)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "cannot connect to admin socket {}: No such file or directory — is `lb run` running with this config?",
            path.display()
        )
    );
    // A stale socket file: connection refused.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let e = request(&path, "show stat", Duration::from_secs(1)).unwrap_err();
    assert!(
        e.to_string()
            .contains("Connection refused — nobody is listening"),
        "{e}"
    );
    // A listener that never answers: timeout, bounded.
    let silent = dir.0.join("silent.sock");
    let _l = std::os::unix::net::UnixListener::bind(&silent).unwrap();
    let e = request(&silent, "show stat", Duration::from_millis(200)).unwrap_err();
    assert!(matches!(e, ClientError::Timeout { .. }), "{e}");
}

#[test]
fn permission_denied_message() {
    let e = std::io::Error::from_raw_os_error(libc::EACCES);
    let msg = ClientError::Connect {
        path: "/run/lb/x.sock".into(),
        source: e,
    }
    .to_string();
    assert_eq!(
        msg,
        "cannot connect to admin socket /run/lb/x.sock: Permission denied — the socket is accessible to its owner only; run as that user (or root)"
    );
}
