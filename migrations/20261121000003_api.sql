-- Item health, alerts and the management API.
--
-- Alert deliveries: each raised or resolved alert is delivered to the configured alert webhook
-- at most once per kind (the unique key de-duplicates), retried with backoff until it succeeds
-- or runs out of attempts. Rows are written in the same transaction as the alert change.
create table alert_deliveries (
    id                        bigint generated always as identity primary key,
    alert_id                  uuid not null references alerts (id) on delete cascade,
    -- `raised`, `resolved`, or `reminder` (a pending expiration close to its deadline).
    kind                      text not null check (kind in ('raised', 'resolved', 'reminder')),
    status                    text not null default 'pending'
        check (status in ('pending', 'delivered', 'failed', 'skipped')),
    attempts                  integer not null default 0,
    next_attempt_at           timestamptz not null default now(),
    last_error                text,
    delivered_at              timestamptz,
    created_at                timestamptz not null default now(),
    updated_at                timestamptz not null default now(),
    unique (alert_id, kind)
);
create index alert_deliveries_due_idx on alert_deliveries (next_attempt_at) where status = 'pending';
create trigger alert_deliveries_updated_at before update on alert_deliveries
    for each row execute function set_updated_at();

create index alerts_item_idx on alerts (item_id, raised_at desc);

-- Health bookkeeping on the Item:
-- `health_checked_at`: last reconciliation with /item/get (the scheduler re-checks Items in
--   error that have not been looked at for a while);
-- `scheduler_sync_requested_at`: when the safety net last asked for a sync, so a stale Item is
--   asked for once per period rather than on every tick;
-- `manual_sync_requested_at`: the per-Item rate limit of the manual sync endpoint.
alter table items
    add column health_checked_at            timestamptz,
    add column scheduler_sync_requested_at  timestamptz,
    add column manual_sync_requested_at     timestamptz;
create index items_unhealthy_idx on items (health_checked_at)
    where status in ('login_required', 'error', 'revoked', 'pending_disconnect');
create index items_consent_idx on items (consent_expires_at)
    where consent_expires_at is not null and status <> 'removed';
