//! Gauges that describe the system rather than one request: Items by status, open alerts,
//! spool depth, dead-letter depth. Sampled on an interval and exported on `/metrics`.
//!
//! Every process samples the same numbers; dashboards take the max across replicas.

use std::time::Duration;

use std::sync::Arc;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::broker::{Broker, Publisher};
use crate::messages::ItemStatus;
use crate::telemetry::names;

const SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// What the gauges are read from.
pub struct GaugeSampler {
    pub db: PgPool,
    pub broker: Broker,
    pub publisher: Arc<Publisher>,
}

impl GaugeSampler {
    pub async fn run(self, shutdown: CancellationToken) {
        run(&self, shutdown).await
    }

    /// Takes one sample of every gauge.
    pub async fn sample(&self) -> anyhow::Result<()> {
        sample(self).await
    }
}

async fn run(state: &GaugeSampler, shutdown: CancellationToken) {
    loop {
        if let Err(error) = sample(state).await {
            tracing::debug!(error = %error, "could not sample gauges");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(SAMPLE_EVERY) => {}
        }
    }
}

async fn sample(state: &GaugeSampler) -> anyhow::Result<()> {
    let counts = sqlx::query!(
        r#"select status as "status: ItemStatus", count(*) as "count!" from items group by status"#
    )
    .fetch_all(&state.db)
    .await?;
    for status in ItemStatus::ALL {
        let count = counts
            .iter()
            .find(|row| row.status == status)
            .map_or(0, |row| row.count);
        metrics::gauge!(names::ITEMS, "status" => status.as_str()).set(count as f64);
    }
    let open_alerts =
        sqlx::query_scalar!(r#"select count(*) as "count!" from alerts where resolved_at is null"#)
            .fetch_one(&state.db)
            .await?;
    metrics::gauge!(names::ALERTS_OPEN).set(open_alerts as f64);
    let spooled = crate::webhook::spool::depth(&state.db).await?;
    metrics::gauge!(names::WEBHOOK_SPOOL_DEPTH).set(spooled as f64);
    let parked = crate::webhook::spool::parked_depth(&state.db).await?;
    metrics::gauge!(names::WEBHOOK_SPOOL_PARKED).set(parked as f64);

    // Queues exist once the topology is declared; a passive declare of a missing queue would
    // close the channel with an error.
    if let (Some(connection), Ok(())) = (
        state.broker.connection(),
        state.publisher.ensure_topology().await,
    ) {
        let channel = connection.create_channel().await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let topology = state.publisher.topology();
        for (queue, label) in [
            (topology.dead_queue(), "dead"),
            (topology.sync_queue(), "sync"),
            (topology.items_queue(), "items"),
            (topology.link_queue(), "link"),
            (topology.unrouted_queue(), "unrouted"),
        ] {
            if let Ok(declared) = channel
                .queue_declare(queue.into(), passive, FieldTable::default())
                .await
            {
                if label == "dead" {
                    metrics::gauge!(names::DEAD_LETTERS).set(declared.message_count() as f64);
                }
                // Consumer lag: messages waiting for a worker.
                metrics::gauge!(names::QUEUE_DEPTH, "queue" => label)
                    .set(declared.message_count() as f64);
            }
        }
        let _ = channel.close(200, "sampled".into()).await;
    }
    Ok(())
}
