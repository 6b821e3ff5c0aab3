//! `/transactions/sync` semantics: opaque cursors and pagination over an Item's change log.
//!
//! A cursor names a position in the Item's change log. An update from position `p` is the net
//! difference between the data at `p` and the data now (version `v`): transactions added since
//! `p` and still there, transactions that existed at `p` and changed, transactions that existed
//! at `p` and are gone. It is cut into pages of `count`; a mid-update cursor carries
//! `(p, v, offset)`. If the log grows past `v` before the last page is fetched, the next page
//! request fails with TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION, as Plaid's does, and the
//! client restarts from the cursor that began the update. The last page's cursor is a plain
//! position `v`, so a saved cursor yields exactly the changes made after it.

use super::data::ItemData;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::sync::Arc;

const CURSOR_VERSION: u8 = 1;

/// A decoded cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncCursor {
    /// Log position the update started from.
    pub start: u64,
    /// Data version the update was computed at.
    pub snapshot: u64,
    /// How many entries of the update were already returned.
    pub offset: u64,
}

impl SyncCursor {
    pub fn at(position: u64) -> Self {
        Self {
            start: position,
            snapshot: position,
            offset: 0,
        }
    }

    /// Whether this cursor is in the middle of a paginated update.
    pub fn is_mid_update(&self) -> bool {
        self.offset > 0
    }

    pub fn encode(&self, item_id: &str) -> String {
        let mut bytes = Vec::with_capacity(33);
        bytes.push(CURSOR_VERSION);
        bytes.extend_from_slice(&item_tag(item_id));
        bytes.extend_from_slice(&self.start.to_be_bytes());
        bytes.extend_from_slice(&self.snapshot.to_be_bytes());
        bytes.extend_from_slice(&self.offset.to_be_bytes());
        STANDARD.encode(bytes)
    }

    /// Decode a cursor issued for `item_id`; `None` when it is malformed or another Item's.
    pub fn decode(text: &str, item_id: &str) -> Option<Self> {
        let bytes = STANDARD.decode(text).ok()?;
        if bytes.len() != 33 || bytes[0] != CURSOR_VERSION || bytes[1..9] != item_tag(item_id) {
            return None;
        }
        let number = |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let cursor = Self {
            start: number(9),
            snapshot: number(17),
            offset: number(25),
        };
        (cursor.start <= cursor.snapshot).then_some(cursor)
    }
}

fn item_tag(item_id: &str) -> [u8; 8] {
    let digest = Sha256::digest(item_id.as_bytes());
    digest[..8].try_into().expect("8 bytes")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Modified,
    Removed,
}

/// The net changes between two versions, in log order of each transaction's last change (a
/// transaction changed again lands where its latest change is, as Plaid orders updates by
/// when they happened, not by when a transaction was first touched).
#[derive(Debug)]
pub struct Update {
    pub start: u64,
    pub snapshot: u64,
    pub entries: Vec<(ChangeKind, u32)>,
}

/// Compute the update from `start` to version `snapshot` of `data` (its current version once
/// the historical update is complete; the initial update's prefix of the log before).
pub fn compute_update(data: &ItemData, start: u64, snapshot: u64) -> Update {
    let mut seen = vec![false; data.txns.len()];
    let mut entries = Vec::new();
    // Backwards, so the first sighting of a transaction is its last change.
    for &index in data.log[start as usize..snapshot as usize].iter().rev() {
        if std::mem::replace(&mut seen[index as usize], true) {
            continue;
        }
        let txn = &data.txns[index as usize];
        let existed_at_start = txn.added_at < start && txn.removed_at.is_none_or(|r| r >= start);
        let live_at_snapshot = txn.removed_at.is_none_or(|r| r >= snapshot);
        let kind = match (existed_at_start, live_at_snapshot) {
            (false, true) => ChangeKind::Added,
            (true, true) => ChangeKind::Modified,
            (true, false) => ChangeKind::Removed,
            (false, false) => continue,
        };
        entries.push((kind, index));
    }
    entries.reverse();
    Update {
        start,
        snapshot,
        entries,
    }
}

/// The result of a sync request, before rendering.
#[derive(Debug)]
pub struct Page {
    pub entries: Vec<(ChangeKind, u32)>,
    pub next: SyncCursor,
    pub has_more: bool,
}

/// Why a sync request cannot be served.
#[derive(Debug, PartialEq, Eq)]
pub enum SyncRefusal {
    InvalidCursor,
    MutationDuringPagination,
}

/// Serve one page of the data as of version `visible` (what the Item's updates so far have
/// made available), of one account's transactions when `account` says which (its own stream:
/// offsets count its entries only). `cache` keeps the last computed update of the Item so
/// paging through a large update costs one pass over the log, not one per page.
pub fn page(
    data: &ItemData,
    visible: u64,
    cursor: Option<SyncCursor>,
    count: usize,
    account: Option<u8>,
    cache: &mut Option<Arc<Update>>,
) -> Result<Page, SyncRefusal> {
    let version = visible.min(data.version());
    let cursor = cursor.unwrap_or(SyncCursor::at(0));
    if cursor.snapshot > version {
        return Err(SyncRefusal::InvalidCursor);
    }
    let update = if cursor.is_mid_update() {
        if cursor.snapshot != version {
            return Err(SyncRefusal::MutationDuringPagination);
        }
        cached_update(data, cursor.start, version, cache)
    } else {
        cached_update(data, cursor.snapshot, version, cache)
    };
    let filtered: Vec<(ChangeKind, u32)>;
    let entries = match account {
        None => update.entries.as_slice(),
        Some(account) => {
            filtered = update
                .entries
                .iter()
                .copied()
                .filter(|&(_, index)| data.txns[index as usize].account == account)
                .collect();
            filtered.as_slice()
        }
    };
    let offset = cursor.offset as usize;
    if offset > entries.len() {
        return Err(SyncRefusal::InvalidCursor);
    }
    let end = (offset + count).min(entries.len());
    let has_more = end < entries.len();
    let next = if has_more {
        SyncCursor {
            start: update.start,
            snapshot: update.snapshot,
            offset: end as u64,
        }
    } else {
        SyncCursor::at(update.snapshot)
    };
    Ok(Page {
        entries: entries[offset..end].to_vec(),
        next,
        has_more,
    })
}

fn cached_update(
    data: &ItemData,
    start: u64,
    snapshot: u64,
    cache: &mut Option<Arc<Update>>,
) -> Arc<Update> {
    match cache {
        Some(update) if update.start == start && update.snapshot == snapshot => update.clone(),
        _ => {
            let update = Arc::new(compute_update(data, start, snapshot));
            *cache = Some(update.clone());
            update
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    #[test]
    fn cursors_round_trip_and_are_bound_to_their_item() {
        let cursor = SyncCursor {
            start: 3,
            snapshot: 10,
            offset: 5,
        };
        let text = cursor.encode("item-a");
        assert_eq!(SyncCursor::decode(&text, "item-a"), Some(cursor));
        assert_eq!(SyncCursor::decode(&text, "item-b"), None);
        assert_eq!(SyncCursor::decode("not base64!", "item-a"), None);
    }

    #[test]
    fn a_removed_transaction_never_seen_by_the_client_is_not_reported() {
        let today = NaiveDate::from_ymd_opt(2026, 1, 31).unwrap();
        let mut data = ItemData::generate(1, 1, 10, 10, today);
        let start = data.version();
        let index = data.add_today();
        data.remove(index);
        let update = compute_update(&data, start, data.version());
        assert!(update.entries.is_empty());
        data.remove(0);
        let update = compute_update(&data, start, data.version());
        assert_eq!(update.entries, vec![(ChangeKind::Removed, 0)]);
    }

    #[test]
    fn updates_are_ordered_by_each_transactions_last_change() {
        let today = NaiveDate::from_ymd_opt(2026, 1, 31).unwrap();
        let mut data = ItemData::generate(1, 1, 10, 10, today);
        let start = data.version();
        data.modify(0);
        data.modify(1);
        data.modify(0);
        let update = compute_update(&data, start, data.version());
        assert_eq!(
            update.entries,
            vec![(ChangeKind::Modified, 1), (ChangeKind::Modified, 0)]
        );
    }
}
