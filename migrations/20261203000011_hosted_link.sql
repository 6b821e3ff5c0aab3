-- Hosted Link: the repair links plaidhook opens for Items that need their user, what became of
-- each session, and the reminder policy of open alerts.

-- One row per Hosted Link session plaidhook opened (update mode). Found again by the link token
-- the LINK webhooks carry. `superseded`: a fresher link replaced it before it was used.
create table link_sessions (
    link_token                text primary key,
    item_id                   uuid not null references items (id) on delete cascade,
    alert_id                  uuid references alerts (id) on delete set null,
    hosted_link_url           text not null,
    expires_at                timestamptz not null,
    status                    text not null default 'open'
        check (status in ('open', 'succeeded', 'exited', 'superseded')),
    link_session_id           text,
    finished_at               timestamptz,
    created_at                timestamptz not null default now(),
    updated_at                timestamptz not null default now()
);
create index link_sessions_item_idx on link_sessions (item_id, created_at desc);
create trigger link_sessions_updated_at before update on link_sessions
    for each row execute function set_updated_at();

-- `announced_at`: when `alert.raised` went out. An alert that needs the user is announced once
-- its repair link is ready (or could not be made), so the first word carries the link.
alter table alerts
    add column announced_at timestamptz,
    add column reminders_sent integer not null default 0,
    add column last_reminded_at timestamptz,
    add column escalated_at timestamptz;
update alerts set announced_at = raised_at;
create index alerts_unannounced_idx on alerts (raised_at) where announced_at is null;

alter table alert_deliveries drop constraint alert_deliveries_kind_check;
alter table alert_deliveries add constraint alert_deliveries_kind_check
    check (kind ~ '^(raised|resolved|reminder|escalated|link_renewed)(\.[0-9]+)?$');

alter table item_status_history drop constraint item_status_history_source_check;
alter table item_status_history add constraint item_status_history_source_check
    check (source in ('webhook', 'api', 'sync', 'operator', 'scheduler', 'hosted_link'));
