//! A long-lived TCP stream through a VIP that pings a line server (see
//! [`crate::backend::line_server`]) from the client's namespace until stopped, logging who
//! answered, the first failure and the longest pause: what tests that must not reset or
//! move a flow (restart, reload, failover) look at afterwards.

use crate::netns::Netns;
use anyhow::{bail, Result};
use std::{
    io::{BufRead, BufReader, Write},
    net::{SocketAddr, TcpStream},
    os::fd::AsRawFd,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// Runs `f` on a new thread that has entered `ns`'s network namespace, so every socket it
/// opens is the namespace's; a failure to enter is the thread's result.
pub fn spawn_in<F, T>(ns: &Netns, f: F) -> Result<JoinHandle<Result<T>>>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    let file = std::fs::File::open(ns.path())?;
    Ok(std::thread::spawn(move || {
        // SAFETY: setns on a namespace fd changes only this thread's namespace.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            bail!("setns: {}", std::io::Error::last_os_error());
        }
        drop(file);
        f()
    }))
}

/// Connects to `addr` with `timeout` for the connect and every read.
pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    Ok(s)
}

/// Sends one line on `s` and reads the answer (a line server's name).
pub fn ask(s: &TcpStream, r: &mut BufReader<TcpStream>) -> Result<String> {
    (&*s).write_all(b"ping\n")?;
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        bail!("stream closed");
    }
    Ok(line.trim().to_string())
}

/// A short connection to a line server: one line, its name.
pub fn fetch_line(addr: SocketAddr, timeout: Duration) -> Result<String> {
    let s = connect(addr, timeout)?;
    let mut r = BufReader::new(s.try_clone()?);
    ask(&s, &mut r)
}

/// What the long-lived stream saw.
#[derive(Debug, Default)]
pub struct StreamLog {
    /// The name of the backend that answered each ping, in order.
    pub answers: Vec<String>,
    /// Why the stream ended early (reset, timeout...), if it did.
    pub error: Option<String>,
    /// The longest time between two answers.
    pub longest_gap: Duration,
}

/// The running stream; stopped and joined by [`Stream::finish`] or on drop.
pub struct Stream {
    log: Arc<Mutex<StreamLog>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl Stream {
    /// Opens a stream from `client` to `addr` and pings it every `every` until stopped or
    /// `limit` has passed; returns once the first answer (or failure) is logged, at most
    /// after `timeout` (also the connect and read timeout).
    pub fn start(
        client: &Netns,
        addr: SocketAddr,
        every: Duration,
        limit: Duration,
        timeout: Duration,
    ) -> Result<Stream> {
        let log = Arc::new(Mutex::new(StreamLog::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let first = Arc::new(AtomicBool::new(false));
        let (l, st, f) = (Arc::clone(&log), Arc::clone(&stop), Arc::clone(&first));
        let thread = spawn_in(client, move || {
            let lock = || l.lock().unwrap_or_else(|e| e.into_inner());
            let run = || -> Result<()> {
                let s = connect(addr, timeout)?;
                let mut r = BufReader::new(s.try_clone()?);
                let started = Instant::now();
                let mut last = Instant::now();
                while !st.load(Ordering::SeqCst) && started.elapsed() < limit {
                    let name = ask(&s, &mut r)?;
                    let gap = last.elapsed();
                    last = Instant::now();
                    let mut g = lock();
                    g.answers.push(name);
                    g.longest_gap = g.longest_gap.max(gap);
                    drop(g);
                    f.store(true, Ordering::SeqCst);
                    std::thread::sleep(every);
                }
                Ok(())
            };
            if let Err(e) = run() {
                lock().error = Some(format!("{e:#}"));
            }
            f.store(true, Ordering::SeqCst);
            Ok(())
        })?;
        let deadline = Instant::now() + timeout;
        while !first.load(Ordering::SeqCst) && Instant::now() < deadline {
            if thread.is_finished() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(Stream {
            log,
            stop,
            thread: Some(thread),
        })
    }

    /// What the stream saw so far.
    pub fn log(&self) -> MutexGuard<'_, StreamLog> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many answers so far.
    pub fn answers(&self) -> usize {
        self.log().answers.len()
    }

    /// Stops the pings and waits for the thread; a failure to enter the namespace is
    /// recorded as the stream's error.
    pub fn finish(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => self.log().error = Some(format!("{e:#}")),
                Err(_) => self.log().error = Some("the stream thread panicked".into()),
            }
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.finish();
    }
}
