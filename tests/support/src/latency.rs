//! A TCP proxy that delays every chunk by a fixed latency in each direction.

use std::net::SocketAddr;
use std::time::Duration;

use crate::serve::ServerTask;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::util::ensure_loopback;

/// Forwards TCP between clients and an upstream, holding each chunk for
/// `delay` before passing it on (both directions, order preserved). Chunks
/// travel in a pipeline, so throughput is not limited to one chunk per
/// delay — like a long network path. Stops when dropped.
#[derive(Debug)]
pub struct LatencyProxy {
    addr: SocketAddr,
    delay: Duration,
    _task: ServerTask,
}

impl LatencyProxy {
    /// Listens on `127.0.0.1:0` and forwards to `upstream` (loopback only).
    pub async fn start(upstream: SocketAddr, delay: Duration) -> anyhow::Result<Self> {
        ensure_loopback(upstream)?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = ServerTask::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                conns.spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::join!(relay(cr, sw, delay), relay(sr, cw, delay));
                });
                while conns.try_join_next().is_some() {}
            }
        });
        Ok(Self {
            addr,
            delay,
            _task: task,
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The one-way delay.
    pub fn delay(&self) -> Duration {
        self.delay
    }
}

/// Copies `from` to `to`, each chunk released `delay` after it was read.
async fn relay(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    // An empty chunk marks EOF, delayed like data.
                    let _ = tx.send((Instant::now() + delay, Vec::new()));
                    break;
                }
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if chunk.is_empty() {
                break;
            }
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
