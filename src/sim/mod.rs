//! The Plaid simulator's entry points. Its endpoints land in the next change; until then the
//! built-in simulator only reserves its address.
use std::net::SocketAddr;

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct SimConfig {}

pub struct Simulator;

pub struct SimHandle(SocketAddr);

impl Simulator {
    pub async fn start(_config: SimConfig, addr: SocketAddr) -> anyhow::Result<SimHandle> {
        let listener = std::net::TcpListener::bind(addr)?;
        Ok(SimHandle(listener.local_addr()?))
    }
}

impl SimHandle {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.0)
    }

    pub async fn shutdown(self) {}
}

pub async fn run(_config: SimConfig, _addr: SocketAddr) -> anyhow::Result<()> {
    anyhow::bail!("the Plaid simulator is not available in this build")
}
