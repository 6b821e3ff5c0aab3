//! The processes of a chaos run: the simulator, two ingress (`serve`) and three `worker`s, each
//! a real `plaidhook` process with its own log file, started, killed and stopped like a
//! deployment's would be.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};

/// One `plaidhook` process.
pub struct Service {
    pub name: String,
    role: &'static str,
    env: Vec<(String, String)>,
    /// The listener whose `/readyz` (or the simulator's `/sim/config`) says it is up.
    probe: String,
    log: PathBuf,
    child: Option<Child>,
}

impl Service {
    pub fn new(
        name: &str,
        role: &'static str,
        env: Vec<(String, String)>,
        probe: String,
        dir: &Path,
    ) -> Self {
        Self {
            name: name.to_owned(),
            role,
            env,
            probe,
            log: dir.join(format!("{name}.log")),
            child: None,
        }
    }

    /// Starts the process; its stdout and stderr go to its log file (appended across restarts).
    pub fn start(&mut self, binary: &Path) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(binary)
            .arg(self.role)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.name))?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until the process answers its probe with 200.
    pub async fn wait_ready(&self, http: &reqwest::Client, within: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Ok(response) = http.get(&self.probe).send().await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "{} not ready within {within:?} (see {})",
                self.name,
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL: the process dies mid-whatever, as in an OOM kill or a lost host.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// SIGTERM, then waits for the process to stop by itself (a rolling deploy); SIGKILL if it
    /// has not stopped within `grace`. Returns whether it stopped by itself.
    pub async fn terminate(&mut self, grace: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        if let Some(pid) = child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        match tokio::time::timeout(grace, child.wait()).await {
            Ok(_) => true,
            Err(_) => {
                let _ = child.kill().await;
                false
            }
        }
    }
}

/// Every process of the run.
pub struct Fleet {
    pub binary: PathBuf,
    pub sim: Service,
    pub ingress: Vec<Service>,
    pub workers: Vec<Service>,
}

impl Fleet {
    pub async fn start_all(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        self.sim.start(&self.binary)?;
        self.sim.wait_ready(http, Duration::from_secs(30)).await?;
        for service in self.ingress.iter_mut().chain(self.workers.iter_mut()) {
            service.start(&self.binary)?;
        }
        for service in self.ingress.iter().chain(self.workers.iter()) {
            service.wait_ready(http, Duration::from_secs(60)).await?;
        }
        Ok(())
    }

    pub async fn stop_all(&mut self) {
        for service in self.ingress.iter_mut().chain(self.workers.iter_mut()) {
            service.terminate(Duration::from_secs(30)).await;
        }
        self.sim.terminate(Duration::from_secs(10)).await;
    }
}
