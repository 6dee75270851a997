//! A TCP proxy a test controls, put between ethpipe and PostgreSQL to lose
//! connections on purpose: cut every open connection, stall them (bytes held,
//! nothing forwarded) and resume, or cut the moment the client sends a given
//! byte pattern (e.g. the `COMMIT` of a day's transaction).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What happens to the chunk that contains the watched pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutPoint {
    /// The server never sees it.
    Before,
    /// The server gets it; the client never hears back.
    After,
}

#[derive(Default)]
struct Controls {
    /// Bumped to close every connection open at that moment.
    cuts: AtomicU64,
    stalled: AtomicBool,
    /// Cut when a client→server chunk contains this.
    pattern: Mutex<Option<Watch>>,
    /// How many times the pattern fired.
    pattern_hits: AtomicU64,
    client_bytes: AtomicU64,
    connections: AtomicU64,
}

pub struct TcpProxy {
    port: u16,
    controls: Arc<Controls>,
    signal: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> anyhow::Result<TcpProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let controls = Arc::new(Controls::default());
        let (signal, _) = watch::channel(0u64);
        let upstream = upstream.to_string();
        let task = {
            let controls = Arc::clone(&controls);
            let signal = signal.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    controls.connections.fetch_add(1, Ordering::SeqCst);
                    let server = match TcpStream::connect(&upstream).await {
                        Ok(server) => server,
                        Err(_) => continue,
                    };
                    let controls = Arc::clone(&controls);
                    let cut = signal.subscribe();
                    tokio::spawn(pipe(client, server, controls, cut));
                }
            })
        };
        Ok(TcpProxy {
            port,
            controls,
            signal,
            task,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Closes every connection open now; new ones are accepted as usual.
    pub fn cut(&self) {
        let next = self.controls.cuts.fetch_add(1, Ordering::SeqCst) + 1;
        self.signal.send_replace(next);
    }

    /// Holds all traffic until [`resume`](Self::resume).
    pub fn stall(&self) {
        self.controls.stalled.store(true, Ordering::SeqCst);
    }

    pub fn resume(&self) {
        self.controls.stalled.store(false, Ordering::SeqCst);
    }

    /// Cuts the connection that sends `pattern` (once), at `point`, after
    /// letting the first `skip` chunks that hold it through.
    pub fn cut_on_client_bytes(&self, pattern: &[u8], skip: u32, point: CutPoint) {
        *self.controls.pattern.lock().expect("lock") = Some(Watch {
            bytes: pattern.to_vec(),
            skip,
            point,
        });
    }

    pub fn pattern_hits(&self) -> u64 {
        self.controls.pattern_hits.load(Ordering::SeqCst)
    }

    /// Bytes the clients have sent through the proxy so far.
    pub fn client_bytes(&self) -> u64 {
        self.controls.client_bytes.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> u64 {
        self.controls.connections.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}

async fn pipe(
    client: TcpStream,
    server: TcpStream,
    controls: Arc<Controls>,
    mut cut: watch::Receiver<u64>,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = client_to_server(&mut client_read, &mut server_write, &controls);
    let downstream = server_to_client(&mut server_read, &mut client_write, &controls);
    let start = *cut.borrow();
    let cut_now = async move {
        while cut.changed().await.is_ok() {
            if *cut.borrow() != start {
                return;
            }
        }
    };
    // Whichever ends first closes both directions (the halves drop here).
    tokio::select! {
        _ = upstream => {}
        _ = downstream => {}
        () = cut_now => {}
    }
}

async fn client_to_server(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    controls: &Controls,
) -> Option<()> {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buffer).await.ok().filter(|n| *n > 0)?;
        wait_while_stalled(controls).await;
        let chunk = &buffer[..n];
        controls.client_bytes.fetch_add(n as u64, Ordering::SeqCst);
        match take_pattern(controls, chunk) {
            Some(CutPoint::Before) => return None,
            Some(CutPoint::After) => {
                to.write_all(chunk).await.ok()?;
                to.flush().await.ok()?;
                return None;
            }
            None => to.write_all(chunk).await.ok()?,
        }
    }
}

async fn server_to_client(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    controls: &Controls,
) -> Option<()> {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buffer).await.ok().filter(|n| *n > 0)?;
        wait_while_stalled(controls).await;
        to.write_all(&buffer[..n]).await.ok()?;
    }
}

async fn wait_while_stalled(controls: &Controls) {
    while controls.stalled.load(Ordering::SeqCst) {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// A byte pattern to cut the connection on.
struct Watch {
    bytes: Vec<u8>,
    /// Occurrences still to let through.
    skip: u32,
    point: CutPoint,
}

/// The cut point if `chunk` holds the watched pattern; it fires once.
fn take_pattern(controls: &Controls, chunk: &[u8]) -> Option<CutPoint> {
    let mut pattern = controls.pattern.lock().expect("lock");
    let watch = pattern.as_mut()?;
    let found = chunk
        .windows(watch.bytes.len())
        .any(|w| w == watch.bytes.as_slice());
    if !found {
        return None;
    }
    if watch.skip > 0 {
        watch.skip -= 1;
        return None;
    }
    let point = watch.point;
    *pattern = None;
    controls.pattern_hits.fetch_add(1, Ordering::SeqCst);
    Some(point)
}
