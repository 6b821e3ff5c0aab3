//! The faults a chaos run injects, at random moments, each kind several times: a RabbitMQ node
//! killed (`kill -9`) and restarted, a memory alarm, PostgreSQL restarted (fast and immediate),
//! workers and an ingress killed (SIGKILL) or stopped (SIGTERM) and started again.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::fleet::Fleet;
use super::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    RabbitNodeKilled,
    RabbitMemoryAlarm,
    PostgresFastRestart,
    PostgresImmediateRestart,
    WorkerKilled,
    WorkerStopped,
    IngressKilled,
    IngressStopped,
}

const ALL: [Fault; 8] = [
    Fault::RabbitNodeKilled,
    Fault::RabbitMemoryAlarm,
    Fault::PostgresFastRestart,
    Fault::PostgresImmediateRestart,
    Fault::WorkerKilled,
    Fault::WorkerStopped,
    Fault::IngressKilled,
    Fault::IngressStopped,
];

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::RabbitNodeKilled => "rabbitmq node kill -9 + restart",
            Fault::RabbitMemoryAlarm => "rabbitmq memory alarm",
            Fault::PostgresFastRestart => "postgresql restart (fast)",
            Fault::PostgresImmediateRestart => "postgresql restart (immediate)",
            Fault::WorkerKilled => "worker SIGKILL + restart",
            Fault::WorkerStopped => "worker SIGTERM + restart",
            Fault::IngressKilled => "ingress SIGKILL + restart",
            Fault::IngressStopped => "ingress SIGTERM + restart",
        }
    }
}

/// How faults reach the broker cluster and the database.
pub struct Injector {
    /// `scripts/rabbit-cluster`.
    pub cluster: PathBuf,
    /// The PostgreSQL cluster's version (`ls /etc/postgresql`).
    pub postgres_version: String,
}

impl Injector {
    /// Injects faults until `stop`, one at a time, each kind in turn in a shuffled order so
    /// every kind recurs; returns how many of each were injected.
    pub async fn run(
        &self,
        fleet: &mut Fleet,
        rng: &mut Rng,
        pause: Duration,
        stop: CancellationToken,
    ) -> anyhow::Result<BTreeMap<Fault, u32>> {
        let mut injected = BTreeMap::new();
        let mut round: Vec<Fault> = Vec::new();
        loop {
            // A random pause, so faults land at any moment of the traffic.
            let wait = pause.mul_f64(0.5 + rng.unit());
            tokio::select! {
                _ = stop.cancelled() => return Ok(injected),
                _ = tokio::time::sleep(wait) => {}
            }
            if round.is_empty() {
                round = ALL.to_vec();
                rng.shuffle(&mut round);
            }
            let fault = round.pop().expect("refilled");
            self.inject(fault, fleet, rng).await?;
            *injected.entry(fault).or_default() += 1;
        }
    }

    async fn inject(&self, fault: Fault, fleet: &mut Fleet, rng: &mut Rng) -> anyhow::Result<()> {
        let node = (1 + rng.below(3)).to_string();
        let binary = fleet.binary.clone();
        eprintln!("chaos: {}", fault.name());
        match fault {
            Fault::RabbitNodeKilled => {
                self.cluster(&["kill", &node]).await?;
                tokio::time::sleep(Duration::from_secs(2)).await;
                self.cluster(&["start", &node]).await?;
            }
            Fault::RabbitMemoryAlarm => {
                self.cluster(&["alarm", &node]).await?;
                tokio::time::sleep(Duration::from_secs(3)).await;
                self.cluster(&["unalarm", &node]).await?;
            }
            Fault::PostgresFastRestart => self.restart_postgres("fast").await?,
            Fault::PostgresImmediateRestart => self.restart_postgres("immediate").await?,
            Fault::WorkerKilled | Fault::IngressKilled => {
                let pool = if fault == Fault::WorkerKilled {
                    &mut fleet.workers
                } else {
                    &mut fleet.ingress
                };
                let index = rng.below(pool.len());
                pool[index].kill().await;
                tokio::time::sleep(Duration::from_millis(500)).await;
                pool[index].start(&binary)?;
            }
            Fault::WorkerStopped | Fault::IngressStopped => {
                let pool = if fault == Fault::WorkerStopped {
                    &mut fleet.workers
                } else {
                    &mut fleet.ingress
                };
                let index = rng.below(pool.len());
                if !pool[index].terminate(Duration::from_secs(60)).await {
                    eprintln!(
                        "chaos: {} did not stop within 60 s of SIGTERM",
                        pool[index].name
                    );
                }
                pool[index].start(&binary)?;
            }
        }
        Ok(())
    }

    async fn cluster(&self, args: &[&str]) -> anyhow::Result<()> {
        let status = Command::new(&self.cluster).args(args).status().await?;
        anyhow::ensure!(status.success(), "rabbit-cluster {args:?} failed");
        Ok(())
    }

    async fn restart_postgres(&self, mode: &str) -> anyhow::Result<()> {
        let status = Command::new("pg_ctlcluster")
            .args([
                "--skip-systemctl-redirect",
                &self.postgres_version,
                "main",
                "restart",
                "-m",
                mode,
            ])
            .status()
            .await?;
        anyhow::ensure!(status.success(), "pg_ctlcluster restart -m {mode} failed");
        Ok(())
    }
}
