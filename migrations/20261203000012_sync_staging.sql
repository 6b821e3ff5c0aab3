-- A sync run's changes as its pages arrive, so a worker holds one page at a time rather than an
-- Item's whole history. Each page is merged in as it comes: one row per transaction and run,
-- the latest version winning, a removal replacing an add (and an add after a removal replacing
-- it), exactly as the run would have merged them in memory. The run's one transaction then
-- applies the rows set-based and builds its events from them.
--
-- Unlogged: staged rows are only ever read by the run that wrote them, on the same connection,
-- before it commits; a crash that loses them loses the run, which starts again from its stored
-- cursor. Rows of a run that did not finish are never applied (every statement names its run)
-- and are deleted by the next run of the Item or by retention.
create unlogged table sync_staging (
    run_id                    uuid not null,
    item_id                   uuid not null,
    transaction_id            text not null,
    -- 'a' added in this run, 'm' modified, 'r' removed: the order of a run's events.
    change                    text not null,
    -- The change this row had before the last page that touched it (null: first seen on that
    -- page), so the worker keeps the run's counts without reading them back.
    previous_change           text,
    account_id                text not null,
    amount                    numeric,
    iso_currency_code         text,
    unofficial_currency_code  text,
    date                      date,
    authorized_date           date,
    datetime                  timestamptz,
    authorized_datetime       timestamptz,
    name                      text,
    merchant_name             text,
    merchant_entity_id        text,
    payment_channel           text,
    category_primary          text,
    category_detailed         text,
    pending                   boolean,
    pending_transaction_id    text,
    raw                       jsonb,
    primary key (run_id, transaction_id)
);
-- A run's events, in order: added, modified, removed, each by transaction id in byte order.
create index sync_staging_events_idx on sync_staging (run_id, change, transaction_id collate "C");

-- Of a run's fetch_ms, the time spent staging its pages.
alter table sync_runs add column staging_ms integer not null default 0;

-- A large run's events are chunks of hundreds of kilobytes of jsonb, compressed as they are
-- stored: lz4 compresses them several times faster than the default pglz (new values only).
alter table outbox alter column payload set compression lz4;
