//! The safety-net scheduler against the simulator: stale Items get a sync, Items in error are
//! re-checked with `/item/get`, pending expirations are reminded once.

use std::time::Duration;

use plaidhook::items::{transition, ItemStatus, Reconciler, StatusSource, Transition};
use plaidhook::scheduler::Scheduler;
use serde_json::Value;
use testkit::alerts::AlertReceiver;
use testkit::api::{start, Harness};
use uuid::Uuid;

const WITHIN: Duration = Duration::from_secs(15);

/// Links an Item and waits until its first fetch at Plaid and its syncs are over: a sync the
/// lifecycle's webhooks trigger later would make a "stale" Item fresh again.
async fn linked_and_synced(h: &Harness, user: &str) -> (Uuid, String) {
    h.link_settled(user).await
}

#[tokio::test]
async fn the_scheduler_resyncs_stale_items_rechecks_broken_ones_and_reminds_expirations() {
    let receiver = AlertReceiver::start().await;
    let h = start(&[
        ("PLAIDHOOK__ALERTS__WEBHOOK_URL", receiver.url.as_str()),
        // The test drives the rounds itself.
        ("PLAIDHOOK__SCHEDULER__ENABLED", "false"),
        ("PLAIDHOOK__SCHEDULER__STALE_AFTER_SECS", "3600"),
        ("PLAIDHOOK__SCHEDULER__ERROR_RECHECK_SECS", "0"),
        ("PLAIDHOOK__SCHEDULER__EXPIRATION_REMINDER_SECS", "864000"),
    ])
    .await;
    let (stale, _) = linked_and_synced(&h, "user-stale").await;
    let (broken, _) = linked_and_synced(&h, "user-broken").await;
    let (expiring, expiring_plaid) = linked_and_synced(&h, "user-expiring").await;

    // Stale: no successful sync for two days.
    sqlx::query("update items set last_synced_at = now() - interval '2 days' where id = $1")
        .bind(stale)
        .execute(&h.app.db)
        .await
        .unwrap();
    // Broken by an error Plaid has since cleared (and whose LOGIN_REPAIRED never arrived).
    let mut tx = h.app.db.begin().await.unwrap();
    transition(
        &mut tx,
        broken,
        Transition {
            to: ItemStatus::Error,
            cause: "item_error",
            error_code: Some("INSTITUTION_DOWN"),
            error_message: Some("the institution is down"),
            source: StatusSource::Operator,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(h.alert_counts(broken, "item_error").await, (1, 1));
    // Expiring: consent ends in 7 days. The Item is at a US institution, so Plaid says it with
    // PENDING_DISCONNECT, reason INSTITUTION_TOKEN_EXPIRATION (PENDING_EXPIRATION is "fired only
    // for Items associated with institutions in Europe").
    let response = h
        .app
        .http
        .post(format!(
            "{}/sim/items/{expiring_plaid}/consent_expiring",
            h.sim_url
        ))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let item = h
        .item_until(expiring, WITHIN, |i| i["status"] == "pending_disconnect")
        .await;
    assert_eq!(item["status"], "pending_disconnect", "{item}");
    assert!(!item["consent_expires_at"].is_null());

    // One round finds each of the three, once. The pending disconnect awaits the user's repair,
    // so it is re-checked at Plaid too (every round, with error_recheck_secs = 0).
    let report = h.app.scheduler.round().await.unwrap();
    assert_eq!(
        (
            report.ran,
            report.syncs_requested,
            report.rechecked,
            report.reminders
        ),
        (true, 1, 2, 1),
        "{report:?}"
    );

    let resynced = h
        .app
        .eventually(WITHIN, || async {
            sqlx::query_scalar::<_, bool>(
                "select exists (select 1 from sync_runs where item_id = $1 and trigger = 'scheduler'
                                and outcome = 'succeeded')",
            )
            .bind(stale)
            .fetch_one(&h.app.db)
            .await
            .unwrap()
        })
        .await;
    assert!(resynced, "the stale Item was synced by the scheduler");

    let item = h
        .item_until(broken, WITHIN, |i| i["status"] == "active")
        .await;
    assert_eq!(item["status"], "active", "{item}");
    assert_eq!(item["history"][0]["source"], "scheduler");
    assert_eq!(h.alert_counts(broken, "item_error").await, (0, 1));

    let is_reminder = |b: &Value| b["event"] == "alert.reminder";
    let received = receiver.until(WITHIN, |r| r.iter().any(is_reminder)).await;
    let reminders: Vec<&Value> = received.iter().filter(|b| is_reminder(b)).collect();
    assert_eq!(reminders.len(), 1, "{received:?}");
    assert_eq!(reminders[0]["alert"]["cause"], "pending_disconnect");
    assert_eq!(
        reminders[0]["alert"]["item"]["client_user_id"],
        "user-expiring"
    );

    // A second round has nothing left to do but re-check the pending disconnect, still
    // unrepaired (and still `pending_disconnect`): each was handled once.
    let again = h.app.scheduler.round().await.unwrap();
    assert_eq!(
        (again.syncs_requested, again.rechecked, again.reminders),
        (0, 1, 0),
        "{again:?}"
    );
    assert_eq!(h.item(expiring).await["status"], "pending_disconnect");
    h.app.stop().await.unwrap();
}

#[tokio::test]
async fn a_round_runs_in_one_replica_at_a_time_and_a_dead_holders_lease_expires() {
    let h = start(&[("PLAIDHOOK__SCHEDULER__ENABLED", "false")]).await;
    // Another replica is in the middle of a round.
    sqlx::query(
        "insert into leases (name, holder, expires_at)
         values ('scheduler', gen_random_uuid(), now() + interval '10 minutes')",
    )
    .execute(&h.app.db)
    .await
    .unwrap();
    let report = h.app.scheduler.round().await.unwrap();
    assert!(!report.ran, "{report:?}");
    // That replica died; once its lease has expired, a round runs here, and gives it back.
    sqlx::query(
        "update leases set expires_at = now() - interval '1 second' where name = 'scheduler'",
    )
    .execute(&h.app.db)
    .await
    .unwrap();
    let report = h.app.scheduler.round().await.unwrap();
    assert!(report.ran, "{report:?}");
    // Only the scheduler's: retention takes a lease of its own at start.
    let leases: i64 = sqlx::query_scalar("select count(*) from leases where name = 'scheduler'")
        .fetch_one(&h.app.db)
        .await
        .unwrap();
    assert_eq!(leases, 0, "the lease is given back after the round");
    h.app.stop().await.unwrap();
}

/// On a pool of one connection, a task that holds a connection while it waits for a second one
/// stops (the acquire times out). A scheduler round, with its re-check at Plaid (a reconcile
/// whose call is recorded), runs on one: nothing in it nests.
#[tokio::test]
async fn a_scheduler_round_runs_on_a_database_pool_of_one_connection() {
    let h = start(&[
        // Data at once: no lifecycle webhook may sync the Item made stale below.
        ("PLAIDHOOK__SIM__INITIAL_DATA_READY", "true"),
        ("PLAIDHOOK__SCHEDULER__ENABLED", "false"),
        ("PLAIDHOOK__SCHEDULER__STALE_AFTER_SECS", "3600"),
        ("PLAIDHOOK__SCHEDULER__ERROR_RECHECK_SECS", "0"),
    ])
    .await;
    let (stale, _) = linked_and_synced(&h, "user-one-connection-stale").await;
    sqlx::query("update items set last_synced_at = now() - interval '2 days' where id = $1")
        .bind(stale)
        .execute(&h.app.db)
        .await
        .unwrap();
    let (broken, broken_plaid) = linked_and_synced(&h, "user-one-connection-broken").await;
    h.app.sim().reset_login(&broken_plaid);
    h.item_until(broken, WITHIN, |i| i["status"] == "login_required")
        .await;

    let one = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with((*h.app.db.connect_options()).clone())
        .await
        .unwrap();
    let app = &h.app.scheduler;
    let scheduler = Scheduler {
        id: Uuid::new_v4(),
        db: one.clone(),
        reconciler: Reconciler {
            db: one,
            ..app.reconciler.clone()
        },
        sync_requests: app.sync_requests.clone(),
        settings: app.settings.clone(),
    };
    let report = scheduler.round().await.unwrap();
    assert_eq!(
        (report.ran, report.syncs_requested, report.rechecked),
        (true, 1, 1),
        "{report:?}"
    );
    h.app.stop().await.unwrap();
}
