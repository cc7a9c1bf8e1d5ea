//! A forward proxy that speaks HTTP `CONNECT` (RFC 9110 §9.3.6), for testing clients that
//! tunnel https through `HTTPS_PROXY`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::serve::ServerTask;
use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A `CONNECT` proxy on 127.0.0.1 that tunnels to loopback targets only and records the
/// targets asked for and whether a `Proxy-Authorization` header came along.
pub struct ConnectProxy {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<(String, bool)>>>,
    _task: ServerTask,
}

impl ConnectProxy {
    /// Starts the proxy.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let log: Arc<Mutex<Vec<(String, bool)>>> = Arc::new(Mutex::new(Vec::new()));
        let shared = log.clone();
        let task = ServerTask::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let log = shared.clone();
                tokio::spawn(async move {
                    let _ = tunnel(client, log).await;
                });
            }
        });
        Ok(Self {
            addr,
            log,
            _task: task,
        })
    }

    /// `http://127.0.0.1:PORT`, for `HTTPS_PROXY`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `host:port` targets of every `CONNECT`, with whether it carried
    /// `Proxy-Authorization`.
    pub fn connects(&self) -> Vec<(String, bool)> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

async fn tunnel(mut client: TcpStream, log: Arc<Mutex<Vec<(String, bool)>>>) -> anyhow::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        anyhow::ensure!(head.len() < 16 * 1024, "request head too large");
        let n = client.read(&mut byte).await?;
        anyhow::ensure!(n == 1, "client closed");
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let request = lines.next().unwrap_or_default();
    let mut parts = request.split(' ');
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default().to_owned(),
    );
    let authorized = lines.any(|l| l.to_ascii_lowercase().starts_with("proxy-authorization:"));
    log.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((target.clone(), authorized));
    let loopback = target.starts_with("127.")
        || target.starts_with("localhost:")
        || target.starts_with("[::1]:");
    if method != "CONNECT" || !loopback {
        client
            .write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            .await?;
        return Ok(());
    }
    let mut upstream = TcpStream::connect(&target)
        .await
        .with_context(|| format!("connecting to {target}"))?;
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}
