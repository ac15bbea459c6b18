//! The keep-alive backend both L7 examples proxy to: it answers every request head with
//! one fixed response, so the measurements count the proxy's work, not a server's.

use std::net::SocketAddr;

/// Starts the backend on a free loopback port and returns its address. `nodelay` sets
/// TCP_NODELAY on accepted connections (as the bench's nginx does).
pub async fn start(response: &'static [u8], nodelay: bool) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind backend");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            if nodelay {
                let _ = s.set_nodelay(true);
            }
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut have = 0;
                loop {
                    match s.read(&mut buf[have..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => have += n,
                    }
                    while let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.copy_within(end + 4..have, 0);
                        have -= end + 4;
                        if s.write_all(response).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}
