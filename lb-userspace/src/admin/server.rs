//! The admin socket server: a Unix stream socket speaking the line protocol of
//! [`super::protocol`], one command per line, dispatched to the daemon's [`AdminHandler`].
//!
//! Safety properties, because this socket can drain servers and reload the config:
//! - the socket file has mode 0600 (configurable) *before* anyone can connect: it is bound
//!   inside a fresh 0700 directory, chmod-ed, then renamed into place (no umask games,
//!   which would race with other threads creating files);
//! - an existing socket file is removed only if nobody answers on it (a stale file from a
//!   crash); a live one means another daemon owns it and binding fails; a non-socket file
//!   is never removed;
//! - the file is removed on shutdown, only if it is still ours (same inode);
//! - lines are bounded ([`MAX_LINE`]), clients are bounded, idle clients time out, and a
//!   rejected line reaches no handler.

use super::protocol::{self, frame_error, frame_ok, AdminCommand, ParseError, HELP, MAX_LINE};
use std::{
    future::Future,
    io,
    os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio::{
    io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    sync::{watch, Semaphore},
    task::JoinSet,
};
use tracing::{debug, info, warn};

/// Socket file mode when not configured: owner only.
pub const DEFAULT_MODE: u32 = 0o600;
/// Concurrent admin connections when not configured.
pub const DEFAULT_MAX_CLIENTS: usize = 16;
/// Idle time (waiting for a command, or for the client to read) before a connection is
/// closed; HAProxy's `stats timeout` default.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// A boxed, sendable future: what [`AdminHandler::handle`] returns, so the handler can be
/// a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A command the handler understood but could not carry out. Displays as one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// The `service/server` does not exist.
    #[error("No such server.")]
    NoSuchServer,
    /// The service does not exist.
    #[error("No such service.")]
    NoSuchService,
    /// Refused as given (e.g. a weight change on a service that has none); the message
    /// says why.
    #[error("{0}")]
    Rejected(String),
    /// It failed while being carried out (e.g. a reload with an invalid config file).
    #[error("{0}")]
    Failed(String),
}

/// What the daemon implements to answer commands. It never sees `help` or `quit` (the
/// server answers those) nor a line that did not parse.
pub trait AdminHandler: Send + Sync + 'static {
    /// Carries out `cmd` and returns the response text (lines; blank lines are dropped
    /// on the wire since an empty line ends a response).
    fn handle(&self, cmd: AdminCommand) -> BoxFuture<'_, Result<String, AdminError>>;
}

/// Why the admin socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AdminServerError {
    /// Another process answers on the socket.
    #[error("admin socket {} is in use by a running process (another `lb run` with this config?)", path.display())]
    InUse {
        /// The socket path.
        path: PathBuf,
    },
    /// Something that is not a socket is at the path; it is left alone.
    #[error("{} exists and is not a socket; refusing to replace it", path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// A file system or socket operation failed.
    #[error("admin socket {}: cannot {action}: {source}", path.display())]
    Io {
        /// The socket path.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        source: io::Error,
    },
}

/// Admin socket settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdminOptions {
    /// Socket file mode (permission bits).
    pub mode: u32,
    /// Most concurrent connections; more are told so and closed.
    pub max_clients: usize,
    /// See [`DEFAULT_IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
}

impl Default for AdminOptions {
    fn default() -> Self {
        AdminOptions {
            mode: DEFAULT_MODE,
            max_clients: DEFAULT_MAX_CLIENTS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// A bound admin socket. Dropping it removes the socket file if it is still ours.
#[derive(Debug)]
pub struct AdminServer {
    path: PathBuf,
    listener: UnixListener,
    options: AdminOptions,
    /// (device, inode) of our socket file, to never unlink someone else's.
    ident: (u64, u64),
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl AdminServer {
    /// Binds the socket at `path` (see the module docs for the guarantees). Must be called
    /// inside a tokio runtime.
    pub fn bind(path: &Path, options: AdminOptions) -> Result<Self, AdminServerError> {
        let io_err = |action: &'static str| {
            let path = path.to_path_buf();
            move |source: io::Error| AdminServerError::Io {
                path,
                action,
                source,
            }
        };
        remove_if_stale(path)?;
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp_dir = parent.join(format!(
            ".lb-admin-{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&tmp_dir)
            .map_err(io_err("create a private directory next to it"))?;
        let tmp_sock = tmp_dir.join("s");
        let result = (|| {
            let std_listener =
                std::os::unix::net::UnixListener::bind(&tmp_sock).map_err(io_err("bind"))?;
            std::fs::set_permissions(
                &tmp_sock,
                std::fs::Permissions::from_mode(options.mode & 0o777),
            )
            .map_err(io_err("set permissions"))?;
            std::fs::rename(&tmp_sock, path).map_err(io_err("move the socket into place"))?;
            Ok(std_listener)
        })();
        let _ = std::fs::remove_file(&tmp_sock);
        let _ = std::fs::remove_dir(&tmp_dir);
        let std_listener = result?;
        let meta = std::fs::symlink_metadata(path).map_err(io_err("stat"))?;
        std_listener
            .set_nonblocking(true)
            .map_err(io_err("set non-blocking mode"))?;
        let listener =
            UnixListener::from_std(std_listener).map_err(io_err("register with the runtime"))?;
        info!(path = %path.display(), mode = format!("{:o}", options.mode & 0o777), "admin socket listening");
        Ok(AdminServer {
            path: path.to_path_buf(),
            listener,
            options,
            ident: (meta.dev(), meta.ino()),
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves until `shutdown` becomes `true` (or its sender is dropped); then closes open
    /// connections and removes the socket file.
    pub async fn serve(self, handler: Arc<dyn AdminHandler>, mut shutdown: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(self.options.max_clients.max(1)));
        let mut conns = JoinSet::new();
        loop {
            tokio::select! {
                biased;
                _ = stopped(&mut shutdown) => break,
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let idle = self.options.idle_timeout;
                        match Arc::clone(&slots).try_acquire_owned() {
                            Ok(permit) => {
                                let handler = Arc::clone(&handler);
                                conns.spawn(async move {
                                    if let Err(e) = serve_conn(stream, handler.as_ref(), idle).await {
                                        debug!(error = %e, "admin connection ended with an error");
                                    }
                                    drop(permit);
                                });
                            }
                            Err(_) => {
                                conns.spawn(async move {
                                    let (rd, mut wr) = stream.into_split();
                                    // Read the command first: closing with it unread would
                                    // reset the connection and hide the message.
                                    let mut rd = BufReader::new(rd);
                                    let wait = idle.min(BUSY_READ_TIMEOUT);
                                    let _ = tokio::time::timeout(wait, read_line(&mut rd, MAX_LINE)).await;
                                    let msg = frame_error("Too many admin connections; try again later.");
                                    let _ = tokio::time::timeout(wait, wr.write_all(msg.as_bytes())).await;
                                });
                            }
                        }
                    }
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        warn!(error = %e, "admin socket accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        conns.shutdown().await;
        info!(path = %self.path.display(), "admin socket closed");
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        if let Ok(meta) = std::fs::symlink_metadata(&self.path) {
            if (meta.dev(), meta.ino()) == self.ident {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// Removes `path` if it is a socket nobody answers on; fails if it is live or not a socket.
fn remove_if_stale(path: &Path) -> Result<(), AdminServerError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(AdminServerError::Io {
                path: path.to_path_buf(),
                action: "stat",
                source,
            })
        }
    };
    if !meta.file_type().is_socket() {
        return Err(AdminServerError::NotASocket {
            path: path.to_path_buf(),
        });
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(AdminServerError::InUse {
            path: path.to_path_buf(),
        }),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            info!(path = %path.display(), "removing stale admin socket");
            std::fs::remove_file(path).map_err(|source| AdminServerError::Io {
                path: path.to_path_buf(),
                action: "remove the stale socket",
                source,
            })
        }
        Err(source) => Err(AdminServerError::Io {
            path: path.to_path_buf(),
            action: "probe the existing socket",
            source,
        }),
    }
}

/// Resolves when shutdown is requested or its sender is gone.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

enum Line {
    Data(Vec<u8>),
    /// Longer than the limit; the rest of the line was skipped (the connection goes on).
    TooLong,
    /// Longer than the limit and still no newline after [`MAX_DISCARD`] bytes.
    Hopeless,
}

/// Bytes of an oversized line skipped while looking for its end before giving up.
const MAX_DISCARD: usize = 1 << 20;
/// How long a client turned away for lack of slots gets to send its command.
const BUSY_READ_TIMEOUT: Duration = Duration::from_secs(1);

/// Reads one `\n`-terminated line of at most `max` bytes; `None` at EOF. An unterminated
/// last line is still a command (`printf 'show stat' | socat ...`). Never buffers more
/// than `max` bytes.
async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R, max: usize) -> io::Result<Option<Line>> {
    let mut line = Vec::new();
    let mut skipped = 0usize;
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(match (skipped > 0, line.is_empty()) {
                (true, _) => Some(Line::TooLong),
                (false, true) => None,
                (false, false) => Some(Line::Data(line)),
            });
        }
        let (chunk, found) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], true),
            None => (buf, false),
        };
        let used = chunk.len() + usize::from(found);
        if skipped == 0 && line.len() + chunk.len() <= max {
            line.extend_from_slice(chunk);
        } else {
            skipped += line.len() + chunk.len();
            line.clear();
        }
        r.consume(used);
        if found {
            return Ok(Some(if skipped > 0 {
                Line::TooLong
            } else {
                Line::Data(line)
            }));
        }
        if skipped > MAX_DISCARD {
            return Ok(Some(Line::Hopeless));
        }
    }
}

async fn serve_conn(
    stream: UnixStream,
    handler: &dyn AdminHandler,
    idle: Duration,
) -> io::Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::with_capacity(MAX_LINE + 2, rd);
    loop {
        let line = match tokio::time::timeout(idle, read_line(&mut rd, MAX_LINE)).await {
            Err(_) => return Ok(()), // idle: close quietly, as HAProxy does
            Ok(r) => r?,
        };
        let (response, close) = match line {
            None => return Ok(()),
            Some(Line::TooLong) => (frame_error(&ParseError::TooLong.to_string()), false),
            Some(Line::Hopeless) => (frame_error(&ParseError::TooLong.to_string()), true),
            Some(Line::Data(bytes)) => match protocol::parse_bytes(&bytes) {
                Ok(None) => continue,
                Ok(Some(AdminCommand::Quit)) => return Ok(()),
                Ok(Some(AdminCommand::Help)) => (frame_ok(HELP), false),
                Ok(Some(cmd)) => {
                    debug!(command = ?cmd, "admin command");
                    match handler.handle(cmd).await {
                        Ok(body) => (frame_ok(&body), false),
                        Err(e) => (frame_error(&e.to_string()), false),
                    }
                }
                Err(e) => (frame_error(&e.to_string()), false),
            },
        };
        match tokio::time::timeout(idle, wr.write_all(response.as_bytes())).await {
            Err(_) => return Ok(()),
            Ok(r) => r?,
        }
        if close {
            // No end of line in sight: whatever follows cannot be told apart from commands.
            let _ = wr.shutdown().await;
            return Ok(());
        }
    }
}
