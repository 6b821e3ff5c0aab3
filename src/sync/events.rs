//! The `transactions.synced` events a sync writes to the outbox, in its own transaction.
//!
//! One run's changes go out as one event, or as numbered chunks of at most
//! `sync.event_chunk_size` transactions for a large run (an initial sync of 50,000 would be tens
//! of megabytes in one message). Each event has its own id, assigned when the run commits and
//! carried as the AMQP `message_id` on every relay attempt, so subscribers de-duplicate on it.
//! A run that changed nothing writes no event, unless it reset the cursor: then one event says
//! so, and its `removed` lists what the full re-sync pruned. The schema is documented in the
//! README.

use sqlx::{Postgres, Transaction as PgTransaction};
use uuid::Uuid;

use super::fetch::{ChangeKind, Changes};
use crate::messages::events::{SyncTotals, TransactionsSynced};
use crate::messages::Event;
use crate::plaid::{Raw, RemovedTransaction, Transaction};

/// The run the events describe.
pub struct SyncedRun<'a> {
    pub item_id: Uuid,
    pub plaid_item_id: &'a str,
    pub sync_run_id: Uuid,
    pub trigger: &'a str,
    pub cursor_reset: bool,
}

enum Entry<'a> {
    Added(&'a Raw<Transaction>),
    Modified(&'a Raw<Transaction>),
    Removed(&'a RemovedTransaction),
}

/// Writes the run's events; returns how many.
pub async fn enqueue_synced(
    tx: &mut PgTransaction<'_, Postgres>,
    run: &SyncedRun<'_>,
    changes: &Changes,
    chunk_size: usize,
) -> Result<usize, sqlx::Error> {
    // A run that changed nothing says nothing, unless it was a reset: subscribers must learn
    // that the Item was re-read in full even when it came back the same.
    if changes.is_empty() && !run.cursor_reset {
        return Ok(0);
    }
    let totals = SyncTotals {
        added: changes.count(ChangeKind::Added),
        modified: changes.count(ChangeKind::Modified),
        removed: changes.removed.len(),
    };
    // Added first, then modified, then removed: a subscriber applying chunks in order sees a
    // posted transaction before the removal of the pending one it replaces.
    let entries: Vec<Entry<'_>> = changes
        .upserts
        .values()
        .filter(|(kind, _)| *kind == ChangeKind::Added)
        .map(|(_, t)| Entry::Added(t))
        .chain(
            changes
                .upserts
                .values()
                .filter(|(kind, _)| *kind == ChangeKind::Modified)
                .map(|(_, t)| Entry::Modified(t)),
        )
        .chain(changes.removed.values().map(Entry::Removed))
        .collect();
    let chunk_size = chunk_size.max(1);
    let chunks = entries.len().div_ceil(chunk_size).max(1);
    let mut chunked: Vec<&[Entry<'_>]> = entries.chunks(chunk_size).collect();
    if chunked.is_empty() {
        chunked.push(&[]);
    }
    for (index, chunk) in chunked.into_iter().enumerate() {
        let mut data = TransactionsSynced {
            plaid_item_id: run.plaid_item_id,
            sync_run_id: run.sync_run_id,
            trigger: run.trigger,
            chunk: index + 1,
            chunks,
            cursor_reset: run.cursor_reset,
            totals: &totals,
            added: Vec::new(),
            modified: Vec::new(),
            removed: Vec::new(),
        };
        for entry in chunk {
            match entry {
                Entry::Added(t) => data.added.push(t),
                Entry::Modified(t) => data.modified.push(t),
                Entry::Removed(r) => data.removed.push(r),
            }
        }
        crate::outbox::enqueue(tx, Some(run.item_id), &Event::TransactionsSynced(data)).await?;
    }
    Ok(chunks)
}
