//! A TCP proxy that a test can cut and restore, to take a real broker away from the app and
//! give it back (the broker itself keeps running for the other tests).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub struct TcpProxy {
    pub addr: SocketAddr,
    /// `None` while the proxy is down; cancelled to cut the live connections.
    links: Arc<Mutex<Option<Links>>>,
    /// Cancelled: the frozen connections are closed (the token is then replaced).
    frozen_cut: Arc<Mutex<CancellationToken>>,
}

/// What the connections opened since the proxy last came up (or froze) answer to.
#[derive(Clone)]
struct Links {
    /// Cancelled: the connections are cut.
    cut: CancellationToken,
    /// Cancelled: the connections stop carrying bytes but stay open.
    freeze: CancellationToken,
}

impl TcpProxy {
    /// Listens on an ephemeral port and forwards to `target` while up; starts down.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let links: Arc<Mutex<Option<Links>>> = Arc::new(Mutex::new(None));
        let state = links.clone();
        let frozen_cut = Arc::new(Mutex::new(CancellationToken::new()));
        let frozen = frozen_cut.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let current = state.lock().unwrap().clone();
                let Some(Links { cut, freeze }) = current else {
                    drop(inbound); // down: refuse by closing at once
                    continue;
                };
                let frozen = frozen.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = cut.cancelled() => {}
                        _ = freeze.cancelled() => {
                            // Silent but open, as a half-dead link is: both sockets are held
                            // until the proxy is taken down or the frozen connections are cut.
                            let released = frozen.lock().unwrap().clone();
                            tokio::select! {
                                _ = cut.cancelled() => {}
                                _ = released.cancelled() => {}
                            }
                            drop((inbound, outbound));
                        }
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    }
                });
            }
        });
        Self {
            addr,
            links,
            frozen_cut,
        }
    }

    /// Forwards new connections from now on.
    pub fn bring_up(&self) {
        let mut links = self.links.lock().unwrap();
        if links.is_none() {
            *links = Some(Links {
                cut: CancellationToken::new(),
                freeze: CancellationToken::new(),
            });
        }
    }

    /// Cuts every live connection and refuses new ones.
    pub fn take_down(&self) {
        if let Some(links) = self.links.lock().unwrap().take() {
            links.cut.cancel();
        }
    }

    /// Every live connection stops carrying bytes in either direction but stays open (neither
    /// end hears a close); connections made from now on are forwarded as usual.
    pub fn freeze_live_connections(&self) {
        let mut links = self.links.lock().unwrap();
        if let Some(links) = links.as_mut() {
            links.freeze.cancel();
            links.freeze = CancellationToken::new();
        }
    }

    /// Closes the connections [`TcpProxy::freeze_live_connections`] froze, as a broker does in
    /// the end with a peer that went silent (its heartbeat timeout): both ends see the close.
    pub fn cut_frozen_connections(&self) {
        let mut frozen = self.frozen_cut.lock().unwrap();
        frozen.cancel();
        *frozen = CancellationToken::new();
    }
}
