//! Gauges that describe the system rather than one request: Items by status, open alerts,
//! spool depth, dead-letter depth. Sampled on an interval and exported on `/metrics`.
//!
//! Every process samples the same numbers; dashboards take the max across replicas.

use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use tokio_util::sync::CancellationToken;

use crate::app::AppState;
use crate::items::ItemStatus;

const SAMPLE_EVERY: Duration = Duration::from_secs(10);

const ALL_STATUSES: [ItemStatus; 7] = [
    ItemStatus::Active,
    ItemStatus::LoginRequired,
    ItemStatus::PendingExpiration,
    ItemStatus::PendingDisconnect,
    ItemStatus::Revoked,
    ItemStatus::Error,
    ItemStatus::Removed,
];

pub async fn run(state: AppState, shutdown: CancellationToken) {
    loop {
        if let Err(error) = sample(&state).await {
            tracing::debug!(error = %error, "could not sample gauges");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(SAMPLE_EVERY) => {}
        }
    }
}

/// Takes one sample of every gauge.
pub async fn sample(state: &AppState) -> anyhow::Result<()> {
    let counts = sqlx::query!(r#"select status, count(*) as "count!" from items group by status"#)
        .fetch_all(&state.db)
        .await?;
    for status in ALL_STATUSES {
        let count = counts
            .iter()
            .find(|row| row.status == status.as_str())
            .map_or(0, |row| row.count);
        metrics::gauge!("plaidhook_items", "status" => status.as_str()).set(count as f64);
    }
    let open_alerts =
        sqlx::query_scalar!(r#"select count(*) as "count!" from alerts where resolved_at is null"#)
            .fetch_one(&state.db)
            .await?;
    metrics::gauge!("plaidhook_alerts_open").set(open_alerts as f64);
    let spooled = crate::webhook::spool::depth(&state.db).await?;
    metrics::gauge!("plaidhook_webhook_spool_depth").set(spooled as f64);

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
        for (queue, label) in [
            (state.topology.dead_queue(), "dead"),
            (state.topology.sync_queue(), "sync"),
            (state.topology.items_queue(), "items"),
        ] {
            if let Ok(declared) = channel
                .queue_declare(queue.into(), passive, FieldTable::default())
                .await
            {
                if label == "dead" {
                    metrics::gauge!("plaidhook_dead_letters").set(declared.message_count() as f64);
                }
                // Consumer lag: messages waiting for a worker.
                metrics::gauge!("plaidhook_queue_depth", "queue" => label)
                    .set(declared.message_count() as f64);
            }
        }
        let _ = channel.close(200, "sampled".into()).await;
    }
    Ok(())
}
