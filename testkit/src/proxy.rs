//! A TCP proxy that a test can cut and restore, to take a real broker away from the app and
//! give it back (the broker itself keeps running for the other tests).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub struct TcpProxy {
    pub addr: SocketAddr,
    /// Cancelled while the proxy is down; replaced by a fresh token when it comes back up.
    up: Arc<Mutex<Option<CancellationToken>>>,
}

impl TcpProxy {
    /// Listens on an ephemeral port and forwards to `target` while up; starts down.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let up: Arc<Mutex<Option<CancellationToken>>> = Arc::new(Mutex::new(None));
        let state = up.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let token = state.lock().unwrap().clone();
                let Some(token) = token else {
                    drop(inbound); // down: refuse by closing at once
                    continue;
                };
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = token.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    }
                });
            }
        });
        Self { addr, up }
    }

    /// Forwards new connections from now on.
    pub fn bring_up(&self) {
        let mut up = self.up.lock().unwrap();
        if up.is_none() {
            *up = Some(CancellationToken::new());
        }
    }

    /// Cuts every live connection and refuses new ones.
    pub fn take_down(&self) {
        if let Some(token) = self.up.lock().unwrap().take() {
            token.cancel();
        }
    }
}
