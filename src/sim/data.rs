//! One Item's bank data: accounts, every transaction it ever had (removed ones kept as
//! tombstones), and the append-only change log `/transactions/sync` pages through.
//!
//! What happens at the bank comes from a seeded RNG, so a seed and an Item's ordinal give the
//! same history every time; the identifiers (account and transaction ids) come from a second
//! RNG with a seed of their own, drawn at random per Item, so a new simulator run never hands
//! out an id an earlier run used (plaidhook's tables key on them). `advance` moves the bank
//! forward by days the way a real bank changes: new transactions, pending ones posting (the
//! pending id removed, the posted one added with `pending_transaction_id`), modifications and
//! removals.
//!
//! Persistence: an Item's data is a pure function of its [`DataRecipe`] (both seeds, size,
//! first bank date and the operations applied since), so the state file stores the recipe and
//! [`ItemData::from_recipe`] rebuilds the exact data, change log and RNG positions included.

use super::catalog::{total_weight, MERCHANTS};
use super::ids::plaid_id;
use chrono::{Duration, NaiveDate};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Days of history Plaid's initial update fetches; the historical update brings the rest.
pub const INITIAL_UPDATE_DAYS: i64 = 30;

/// What kind of account (the generator keeps three, like Plaid's sandbox user).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountKind {
    Checking,
    Savings,
    CreditCard,
}

#[derive(Debug, Clone)]
pub struct SimAccount {
    pub account_id: String,
    pub kind: AccountKind,
    /// Current balance in cents (for the credit card: the amount owed).
    pub current_cents: i64,
}

/// A transaction, compactly. Rendered to `plaid::Transaction` on the way out.
#[derive(Debug, Clone)]
pub struct SimTxn {
    pub transaction_id: Box<str>,
    pub account: u8,
    pub merchant: u16,
    pub amount_cents: i64,
    pub date: NaiveDate,
    pub authorized_date: NaiveDate,
    pub pending: bool,
    pub pending_transaction_id: Option<Box<str>>,
    /// Bumped on each modification; shown in the description so a change is visible.
    pub revision: u16,
    /// Log position at which it was added.
    pub added_at: u64,
    /// Log position at which it was removed, if it was.
    pub removed_at: Option<u64>,
}

impl SimTxn {
    pub fn is_live(&self) -> bool {
        self.removed_at.is_none()
    }
}

/// Counts of one batch of changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChangeCounts {
    pub added: usize,
    pub modified: usize,
    pub removed: usize,
}

impl ChangeCounts {
    pub fn is_empty(&self) -> bool {
        self.added + self.modified + self.removed == 0
    }
}

/// A change applied to an Item's data after generation, in order; consecutive ones of a kind
/// merge (advancing 2 days then 3 is advancing 5: each day draws the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataOp {
    /// `advance(days)`.
    Advance(u32),
    /// `add_one()`, this many times.
    AddOne(u32),
}

/// Everything an Item's data is rebuilt from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataRecipe {
    /// Seed of what happens at the bank (amounts, merchants, dates, changes).
    pub seed: u64,
    /// Seed of the account and transaction ids.
    pub id_seed: u64,
    pub count: usize,
    pub days: u32,
    /// The bank's date when the history was generated.
    pub generated_on: NaiveDate,
    pub ops: Vec<DataOp>,
}

#[derive(Debug)]
pub struct ItemData {
    pub accounts: Vec<SimAccount>,
    pub txns: Vec<SimTxn>,
    /// The change log: each entry is the index of a transaction that was added, modified or
    /// removed at that position. Its length is the Item's data version.
    pub log: Vec<u32>,
    pub today: NaiveDate,
    /// How many log entries the initial update covers: the generated history is logged most
    /// recent 30 days first, so the initial update is a prefix of the log and the historical
    /// update the rest (see `sync`).
    pub initial_len: u64,
    rng: StdRng,
    /// Identifiers only, so the bank's story does not depend on them.
    ids: StdRng,
    per_day: f64,
    recipe: DataRecipe,
}

impl ItemData {
    /// A fresh history of `count` transactions spread over `days` days ending `today`; what
    /// happens comes from `seed`, the ids from `id_seed`.
    pub fn generate(seed: u64, id_seed: u64, count: usize, days: u32, today: NaiveDate) -> Self {
        let rng = StdRng::seed_from_u64(seed);
        let mut ids = StdRng::seed_from_u64(id_seed);
        let accounts = vec![
            SimAccount {
                account_id: plaid_id(&mut ids),
                kind: AccountKind::Checking,
                current_cents: 0,
            },
            SimAccount {
                account_id: plaid_id(&mut ids),
                kind: AccountKind::Savings,
                current_cents: 21_000,
            },
            SimAccount {
                account_id: plaid_id(&mut ids),
                kind: AccountKind::CreditCard,
                current_cents: 0,
            },
        ];
        let recipe = DataRecipe {
            seed,
            id_seed,
            count,
            days,
            generated_on: today,
            ops: Vec::new(),
        };
        let days = days.max(1);
        let mut data = Self {
            accounts,
            txns: Vec::with_capacity(count),
            log: Vec::with_capacity(count),
            today,
            initial_len: 0,
            rng,
            ids,
            per_day: (count as f64 / days as f64).clamp(1.0, 200.0),
            recipe,
        };
        let mut offsets: Vec<i64> = (0..count)
            .map(|_| data.rng.gen_range(0..days as i64))
            .collect();
        offsets.sort_unstable_by(|a, b| b.cmp(a));
        for offset in offsets {
            let date = today - Duration::days(offset);
            let pending = offset <= 2 && data.rng.gen_bool(0.6);
            let posted_from_pending = !pending && offset <= 10 && data.rng.gen_bool(0.3);
            let pending_id = posted_from_pending.then(|| plaid_id(&mut data.ids).into_boxed_str());
            data.push_new(date, pending, pending_id);
        }
        data.log_recent_first(today - Duration::days(INITIAL_UPDATE_DAYS));
        // Opening balances: generation moved them; start every Item from the same figures.
        for account in &mut data.accounts {
            account.current_cents = match account.kind {
                AccountKind::Checking => 100_000,
                AccountKind::Savings => 21_000,
                AccountKind::CreditCard => 41_000,
            };
        }
        data
    }

    /// The data `recipe` describes: generated, then every operation replayed in order.
    pub fn from_recipe(recipe: &DataRecipe) -> Self {
        let mut data = Self::generate(
            recipe.seed,
            recipe.id_seed,
            recipe.count,
            recipe.days,
            recipe.generated_on,
        );
        for op in &recipe.ops {
            match *op {
                DataOp::Advance(days) => {
                    data.advance(days);
                }
                DataOp::AddOne(times) => {
                    for _ in 0..times {
                        data.add_one();
                    }
                }
            }
        }
        data
    }

    /// Reorders the generated history's log: transactions dated after `cutoff` (Plaid's initial
    /// update) first, the older ones (its historical update) after, each in date order. Only the
    /// log positions change; what the RNG drew, and so the bank's story, does not.
    fn log_recent_first(&mut self, cutoff: NaiveDate) {
        let (recent, older): (Vec<u32>, Vec<u32>) = self
            .log
            .iter()
            .partition(|&&i| self.txns[i as usize].date > cutoff);
        self.initial_len = recent.len() as u64;
        self.log = recent.into_iter().chain(older).collect();
        for (position, &index) in self.log.iter().enumerate() {
            self.txns[index as usize].added_at = position as u64;
        }
    }

    /// What this data is rebuilt from.
    pub fn recipe(&self) -> &DataRecipe {
        &self.recipe
    }

    /// For `#[serde(with = "…")]`: an Item's data is stored as its recipe.
    pub fn serialize_as_recipe<S: serde::Serializer>(
        data: &ItemData,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        data.recipe.serialize(serializer)
    }

    pub fn deserialize_from_recipe<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<ItemData, D::Error> {
        DataRecipe::deserialize(deserializer).map(|recipe| ItemData::from_recipe(&recipe))
    }

    fn record(&mut self, op: DataOp) {
        match (self.recipe.ops.last_mut(), op) {
            (Some(DataOp::Advance(days)), DataOp::Advance(more)) => *days += more,
            (Some(DataOp::AddOne(times)), DataOp::AddOne(more)) => *times += more,
            _ => self.recipe.ops.push(op),
        }
    }

    pub fn version(&self) -> u64 {
        self.log.len() as u64
    }

    pub fn live(&self) -> impl Iterator<Item = &SimTxn> {
        self.txns.iter().filter(|t| t.is_live())
    }

    fn pick_merchant(&mut self) -> u16 {
        let mut roll = self.rng.gen_range(0..total_weight());
        for (index, merchant) in MERCHANTS.iter().enumerate() {
            if roll < merchant.weight {
                return index as u16;
            }
            roll -= merchant.weight;
        }
        0
    }

    fn pick_account(&mut self, merchant: u16) -> u8 {
        if MERCHANTS[merchant as usize].cents.0 < 0 {
            return if self.rng.gen_bool(0.9) { 0 } else { 1 };
        }
        match self.rng.gen_range(0..100) {
            0..=54 => 0,
            55..=94 => 2,
            _ => 1,
        }
    }

    fn push_new(
        &mut self,
        date: NaiveDate,
        pending: bool,
        pending_transaction_id: Option<Box<str>>,
    ) -> u32 {
        let merchant = self.pick_merchant();
        let account = self.pick_account(merchant);
        let (low, high) = MERCHANTS[merchant as usize].cents;
        let amount_cents = self.rng.gen_range(low..=high);
        let authorized_date = date - Duration::days(self.rng.gen_range(0..=1));
        let txn = SimTxn {
            transaction_id: plaid_id(&mut self.ids).into_boxed_str(),
            account,
            merchant,
            amount_cents,
            date,
            authorized_date,
            pending,
            pending_transaction_id,
            revision: 0,
            added_at: self.version(),
            removed_at: None,
        };
        self.push_txn(txn)
    }

    fn push_txn(&mut self, txn: SimTxn) -> u32 {
        if !txn.pending {
            self.adjust_balance(txn.account, txn.amount_cents);
        }
        let index = self.txns.len() as u32;
        self.txns.push(txn);
        self.log.push(index);
        index
    }

    fn adjust_balance(&mut self, account: u8, amount_cents: i64) {
        let account = &mut self.accounts[account as usize];
        match account.kind {
            AccountKind::CreditCard => account.current_cents += amount_cents,
            _ => account.current_cents -= amount_cents,
        }
    }

    /// Remove a live transaction (logged). Not recorded in the recipe: only `advance` and
    /// `add_one` are, so the simulator changes data through those two.
    pub fn remove(&mut self, index: u32) {
        let position = self.version();
        let txn = &mut self.txns[index as usize];
        if txn.removed_at.is_some() {
            return;
        }
        txn.removed_at = Some(position);
        let (pending, account, amount) = (txn.pending, txn.account, txn.amount_cents);
        if !pending {
            self.adjust_balance(account, -amount);
        }
        self.log.push(index);
    }

    /// Modify a live transaction in place (logged).
    pub fn modify(&mut self, index: u32) {
        let delta = self.rng.gen_range(-300..=300);
        let txn = &mut self.txns[index as usize];
        txn.revision = txn.revision.wrapping_add(1);
        let old = txn.amount_cents;
        if old > 0 {
            txn.amount_cents = (old + delta).max(1);
        }
        let (pending, account, change) = (txn.pending, txn.account, txn.amount_cents - old);
        if !pending {
            self.adjust_balance(account, change);
        }
        self.log.push(index);
    }

    /// Post a pending transaction: the pending one is removed and a posted one added that
    /// carries `pending_transaction_id`, maybe with a different amount (a tip, a hotel hold).
    pub fn post(&mut self, index: u32) -> u32 {
        self.remove(index);
        let pending = self.txns[index as usize].clone();
        let mut amount_cents = pending.amount_cents;
        if MERCHANTS[pending.merchant as usize].primary == "FOOD_AND_DRINK"
            && self.rng.gen_bool(0.3)
        {
            amount_cents += amount_cents * self.rng.gen_range(10..=20) / 100;
        }
        let posted = SimTxn {
            transaction_id: plaid_id(&mut self.ids).into_boxed_str(),
            amount_cents,
            date: self.today,
            pending: false,
            pending_transaction_id: Some(pending.transaction_id.clone()),
            revision: 0,
            added_at: self.version(),
            removed_at: None,
            ..pending
        };
        self.push_txn(posted)
    }

    /// Add one new transaction dated today (pending or posted).
    pub fn add_today(&mut self) -> u32 {
        let pending = self.rng.gen_bool(0.5);
        self.push_new(self.today, pending, None)
    }

    /// A random recent live posted transaction (for modifications and removals).
    fn recent_posted(&mut self) -> Option<u32> {
        let candidates: Vec<u32> = (0..self.txns.len() as u32)
            .rev()
            .filter(|&i| {
                let t = &self.txns[i as usize];
                t.is_live() && !t.pending
            })
            .take(30)
            .collect();
        (!candidates.is_empty()).then(|| candidates[self.rng.gen_range(0..candidates.len())])
    }

    /// Move the bank forward by `days`, producing the changes a real bank would.
    pub fn advance(&mut self, days: u32) -> ChangeCounts {
        self.record(DataOp::Advance(days));
        let mut counts = ChangeCounts::default();
        for _ in 0..days {
            self.today += Duration::days(1);
            let pending: Vec<u32> = (0..self.txns.len() as u32)
                .filter(|&i| {
                    let t = &self.txns[i as usize];
                    t.is_live() && t.pending
                })
                .collect();
            for index in pending {
                let age = (self.today - self.txns[index as usize].date).num_days();
                if age >= 3 || (age >= 1 && self.rng.gen_bool(0.7)) {
                    self.post(index);
                    counts.removed += 1;
                    counts.added += 1;
                }
            }
            let spread = (self.per_day * 0.5).max(1.0);
            let new = (self.per_day + self.rng.gen_range(-spread..=spread))
                .round()
                .max(1.0) as usize;
            for _ in 0..new {
                self.add_today();
                counts.added += 1;
            }
            if self.rng.gen_bool(0.3) {
                if let Some(index) = self.recent_posted() {
                    self.modify(index);
                    counts.modified += 1;
                }
            }
            if self.rng.gen_bool(0.1) {
                if let Some(index) = self.recent_posted() {
                    self.remove(index);
                    counts.removed += 1;
                }
            }
        }
        counts
    }

    /// The smallest real change: one new transaction today (a refresh that found something,
    /// or a mutation injected during pagination).
    pub fn add_one(&mut self) -> ChangeCounts {
        self.record(DataOp::AddOne(1));
        self.add_today();
        ChangeCounts {
            added: 1,
            ..ChangeCounts::default()
        }
    }

    /// Sum of pending amounts on an account (for `available`).
    pub fn pending_cents(&self, account: u8) -> i64 {
        self.live()
            .filter(|t| t.pending && t.account == account)
            .map(|t| t.amount_cents)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_generates_the_same_history() {
        let today = NaiveDate::from_ymd_opt(2026, 1, 31).unwrap();
        let a = ItemData::generate(9, 1, 200, 90, today);
        let b = ItemData::generate(9, 1, 200, 90, today);
        let ids = |d: &ItemData| {
            d.txns
                .iter()
                .map(|t| (t.transaction_id.clone(), t.amount_cents))
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&a), ids(&b));
        assert_eq!(a.version(), 200);
    }

    #[test]
    fn advancing_posts_pending_transactions_with_a_link_to_the_pending_id() {
        let today = NaiveDate::from_ymd_opt(2026, 1, 31).unwrap();
        let mut data = ItemData::generate(3, 4, 300, 30, today);
        let pending: Vec<Box<str>> = data
            .live()
            .filter(|t| t.pending)
            .map(|t| t.transaction_id.clone())
            .collect();
        assert!(!pending.is_empty());
        data.advance(5);
        for id in pending {
            assert!(
                data.live().all(|t| t.transaction_id != id),
                "pending {id} still live"
            );
            assert!(data
                .live()
                .any(|t| t.pending_transaction_id.as_deref() == Some(&*id)));
        }
    }

    fn fingerprint(d: &ItemData) -> Vec<String> {
        d.txns
            .iter()
            .map(|t| {
                format!(
                    "{} {} {} {} {:?}",
                    t.transaction_id, t.amount_cents, t.date, t.pending, t.removed_at
                )
            })
            .collect()
    }

    #[test]
    fn the_recipe_rebuilds_the_same_data_and_keeps_drawing_the_same_way() {
        let today = NaiveDate::from_ymd_opt(2026, 1, 31).unwrap();
        let mut data = ItemData::generate(5, 6, 120, 30, today);
        data.advance(2);
        data.add_one();
        data.add_one();
        data.advance(3);
        assert_eq!(
            data.recipe().ops,
            vec![DataOp::Advance(2), DataOp::AddOne(2), DataOp::Advance(3)]
        );
        let mut rebuilt = ItemData::from_recipe(data.recipe());
        assert_eq!(fingerprint(&rebuilt), fingerprint(&data));
        assert_eq!(rebuilt.log, data.log);
        assert_eq!(rebuilt.today, data.today);
        data.advance(4);
        rebuilt.advance(4);
        assert_eq!(fingerprint(&rebuilt), fingerprint(&data));
        assert_eq!(rebuilt.recipe(), data.recipe());
    }

    #[test]
    fn another_id_seed_keeps_the_bank_story_and_changes_every_id() {
        let today = NaiveDate::from_ymd_opt(2026, 1, 31).unwrap();
        let a = ItemData::generate(5, 1, 100, 30, today);
        let b = ItemData::generate(5, 2, 100, 30, today);
        let story = |d: &ItemData| {
            d.txns
                .iter()
                .map(|t| (t.amount_cents, t.date, t.merchant))
                .collect::<Vec<_>>()
        };
        assert_eq!(story(&a), story(&b));
        assert!(
            a.txns
                .iter()
                .chain(b.txns.iter())
                .map(|t| &t.transaction_id)
                .collect::<std::collections::HashSet<_>>()
                .len()
                == 200
        );
    }
}
