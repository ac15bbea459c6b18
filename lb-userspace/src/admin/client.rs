//! The `lb` CLI side of the admin socket: send one command, print the answer, exit
//! non-zero on an error answer. Blocking std I/O on purpose: the CLI needs no runtime.
//!
//! Errors say what to do next, because the usual causes are operational: no daemon
//! running with this config (missing socket), not the socket's owner (mode 0600), or a
//! stale socket file left by a crash.

use super::protocol::{ERROR_PREFIX, MAX_LINE};
use std::{
    io::{self, Read, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

/// How long the CLI waits for an answer (a reload or a large `show flows` can be slow).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response accepted, so a confused peer cannot exhaust memory.
pub const MAX_RESPONSE: usize = 64 << 20;

/// The daemon's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Success: the response text (each line ends with `\n`; may be empty).
    Ok(String),
    /// The daemon rejected the command: its one-line message.
    Error(String),
}

/// Why no answer was obtained.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be reached.
    #[error("{}", connect_message(path, source))]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The command cannot be sent as one line.
    #[error("invalid command: {0}")]
    InvalidCommand(&'static str),
    /// No complete answer in time.
    #[error("no answer from admin socket {} within {}s", path.display(), after.as_secs())]
    Timeout {
        /// The socket path.
        path: PathBuf,
        /// The limit.
        after: Duration,
    },
    /// The daemon closed the connection before a complete answer.
    #[error("admin socket {} closed the connection before answering", path.display())]
    Closed {
        /// The socket path.
        path: PathBuf,
    },
    /// The answer exceeded [`MAX_RESPONSE`].
    #[error("answer from admin socket {} is larger than {MAX_RESPONSE} bytes", path.display())]
    TooLarge {
        /// The socket path.
        path: PathBuf,
    },
    /// Reading or writing failed.
    #[error("admin socket {}: {source}", path.display())]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

fn connect_message(path: &Path, e: &io::Error) -> String {
    let p = path.display();
    // The OS text without Rust's " (os error N)" suffix, as strerror would print it.
    let full = e.to_string();
    let os = full.split(" (os error").next().unwrap_or(&full);
    match e.kind() {
        io::ErrorKind::NotFound => format!(
            "cannot connect to admin socket {p}: {os} — is `lb run` running with this config?"
        ),
        io::ErrorKind::PermissionDenied => format!(
            "cannot connect to admin socket {p}: {os} — the socket is accessible to its owner only; run as that user (or root)"
        ),
        io::ErrorKind::ConnectionRefused => format!(
            "cannot connect to admin socket {p}: {os} — nobody is listening (stale socket file?); is `lb run` running?"
        ),
        _ => format!("cannot connect to admin socket {p}: {os}"),
    }
}

/// Sends `command` (one line, no newline) and waits up to `timeout` for the answer.
pub fn request(path: &Path, command: &str, timeout: Duration) -> Result<Reply, ClientError> {
    let command = command.trim();
    if command.is_empty() {
        return Err(ClientError::InvalidCommand("empty command; try 'help'"));
    }
    if command.contains(['\n', '\r']) {
        return Err(ClientError::InvalidCommand("a command is one line"));
    }
    if command.len() > MAX_LINE {
        return Err(ClientError::InvalidCommand(
            "command longer than 4096 bytes",
        ));
    }
    let mut stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
        path: path.to_path_buf(),
        source,
    })?;
    let io_err = |source: io::Error| {
        if matches!(
            source.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ) {
            ClientError::Timeout {
                path: path.to_path_buf(),
                after: timeout,
            }
        } else {
            ClientError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    };
    let timeout = timeout.max(Duration::from_millis(1));
    stream.set_read_timeout(Some(timeout)).map_err(io_err)?;
    stream.set_write_timeout(Some(timeout)).map_err(io_err)?;
    stream
        .write_all(format!("{command}\n").as_bytes())
        .map_err(io_err)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if buf == b"\n" || buf.ends_with(b"\n\n") {
            break;
        }
        if std::time::Instant::now() >= deadline {
            return Err(ClientError::Timeout {
                path: path.to_path_buf(),
                after: timeout,
            });
        }
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        };
        if n == 0 {
            return Err(ClientError::Closed {
                path: path.to_path_buf(),
            });
        }
        if buf.len() + n > MAX_RESPONSE {
            return Err(ClientError::TooLarge {
                path: path.to_path_buf(),
            });
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    // Drop the terminating empty line.
    buf.pop();
    let text = String::from_utf8_lossy(&buf).into_owned();
    Ok(match text.strip_prefix(ERROR_PREFIX) {
        Some(msg) => Reply::Error(msg.trim_end().to_string()),
        None => Reply::Ok(text),
    })
}

/// The `lb <command words...>` entry point: prints the answer on stdout, or `lb: <error>`
/// on stderr and fails.
pub fn run(path: &Path, words: &[String]) -> ExitCode {
    match request(path, &words.join(" "), DEFAULT_TIMEOUT) {
        Ok(Reply::Ok(text)) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Ok(Reply::Error(msg)) => {
            eprintln!("lb: {msg}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("lb: {e}");
            ExitCode::FAILURE
        }
    }
}
