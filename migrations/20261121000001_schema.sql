-- plaidhook's domain: Items and their data, health, sync runs, alerts, the outbox, the webhook
-- spool and the Plaid API call log. Landed migrations are never edited; add a new one instead.

create function set_updated_at() returns trigger language plpgsql as $$
begin
    new.updated_at = now();
    return new;
end;
$$;

-- A linked Item. The access token is stored only encrypted (AEAD); `access_token_key_id` names
-- the key so keys can be rotated. `sync_cursor` null means "sync from the start".
create table items (
    id                        uuid primary key,
    plaid_item_id             text not null unique,
    client_user_id            text,
    institution_id            text,
    institution_name          text,
    access_token_ciphertext   bytea not null,
    access_token_nonce        bytea not null,
    access_token_key_id       text not null,
    sync_cursor               text,
    status                    text not null default 'active'
        check (status in ('active', 'login_required', 'pending_expiration', 'pending_disconnect',
                          'revoked', 'error', 'removed')),
    error_type                text,
    error_code                text,
    error_message             text,
    consent_expires_at        timestamptz,
    new_accounts_available    boolean not null default false,
    -- Set when a sync is requested while one runs; the running sync loops once more.
    sync_requested_at         timestamptz,
    last_sync_started_at      timestamptz,
    last_synced_at            timestamptz,
    last_webhook_at           timestamptz,
    removed_at                timestamptz,
    created_at                timestamptz not null default now(),
    updated_at                timestamptz not null default now()
);
create index items_status_idx on items (status);
create index items_last_synced_idx on items (last_synced_at) where status = 'active';
create trigger items_updated_at before update on items
    for each row execute function set_updated_at();

create table accounts (
    account_id                text primary key,
    item_id                   uuid not null references items (id) on delete cascade,
    name                      text not null,
    official_name             text,
    mask                      text,
    type                      text not null,
    subtype                   text,
    balance_available         numeric,
    balance_current           numeric,
    balance_limit             numeric,
    iso_currency_code         text,
    unofficial_currency_code  text,
    balances_updated_at       timestamptz,
    created_at                timestamptz not null default now(),
    updated_at                timestamptz not null default now()
);
create index accounts_item_idx on accounts (item_id);
create trigger accounts_updated_at before update on accounts
    for each row execute function set_updated_at();

-- Transactions as Plaid reports them. A posted transaction that replaced a pending one carries
-- `pending_transaction_id`, so downstream can replace rather than duplicate. `raw` keeps the
-- whole Plaid object for fields not broken out into columns.
create table transactions (
    transaction_id            text primary key,
    item_id                   uuid not null references items (id) on delete cascade,
    account_id                text not null,
    amount                    numeric not null,
    iso_currency_code         text,
    unofficial_currency_code  text,
    date                      date not null,
    authorized_date           date,
    datetime                  timestamptz,
    authorized_datetime       timestamptz,
    name                      text,
    merchant_name             text,
    merchant_entity_id        text,
    payment_channel           text,
    category_primary          text,
    category_detailed         text,
    pending                   boolean not null,
    pending_transaction_id    text,
    raw                       jsonb not null,
    created_at                timestamptz not null default now(),
    updated_at                timestamptz not null default now()
);
create index transactions_item_date_idx on transactions (item_id, date desc);
create index transactions_account_date_idx on transactions (account_id, date desc);
create index transactions_pending_link_idx on transactions (pending_transaction_id)
    where pending_transaction_id is not null;
create trigger transactions_updated_at before update on transactions
    for each row execute function set_updated_at();

-- Every status transition of an Item, and why.
create table item_status_history (
    id                        bigint generated always as identity primary key,
    item_id                   uuid not null references items (id) on delete cascade,
    from_status               text,
    to_status                 text not null,
    cause                     text not null,
    error_code                text,
    error_message             text,
    source                    text not null
        check (source in ('webhook', 'api', 'sync', 'operator', 'scheduler')),
    created_at                timestamptz not null default now()
);
create index item_status_history_item_idx on item_status_history (item_id, created_at desc);

-- One row per sync run: what triggered it, what it did, and Plaid's request ids for support.
create table sync_runs (
    id                        uuid primary key,
    item_id                   uuid not null references items (id) on delete cascade,
    trigger                   text not null,
    outcome                   text not null default 'running'
        check (outcome in ('running', 'succeeded', 'retrying', 'failed', 'item_error')),
    pages                     integer not null default 0,
    pagination_restarts       integer not null default 0,
    cursor_reset              boolean not null default false,
    added                     integer not null default 0,
    modified                  integer not null default 0,
    removed                   integer not null default 0,
    error_code                text,
    error_message             text,
    plaid_request_ids         text[] not null default '{}',
    started_at                timestamptz not null default now(),
    finished_at               timestamptz
);
create index sync_runs_item_idx on sync_runs (item_id, started_at desc);

-- Alerts for humans: at most one open alert per Item and cause.
create table alerts (
    id                        uuid primary key,
    item_id                   uuid not null references items (id) on delete cascade,
    cause                     text not null,
    error_code                text,
    message                   text not null,
    raised_at                 timestamptz not null default now(),
    resolved_at               timestamptz,
    resolution                text,
    created_at                timestamptz not null default now(),
    updated_at                timestamptz not null default now()
);
create unique index alerts_one_open_per_cause on alerts (item_id, cause) where resolved_at is null;
create trigger alerts_updated_at before update on alerts
    for each row execute function set_updated_at();

-- Transactional outbox: events written in the same transaction as the change they describe,
-- relayed to the plaid.events exchange and marked published only after the broker confirms.
create table outbox (
    id                        bigint generated always as identity primary key,
    event_id                  uuid not null unique,
    routing_key               text not null,
    payload                   jsonb not null,
    attempts                  integer not null default 0,
    last_error                text,
    published_at              timestamptz,
    created_at                timestamptz not null default now()
);
create index outbox_pending_idx on outbox (id) where published_at is null;

-- Verified webhooks that could not be confirmed by the broker in time. Relayed in id order,
-- deleted only after the broker confirms. `envelope` holds the exact bytes to publish.
create table webhook_spool (
    id                        bigint generated always as identity primary key,
    webhook_id                uuid not null unique,
    routing_key               text not null,
    envelope                  bytea not null,
    received_at               timestamptz not null,
    attempts                  integer not null default 0,
    last_error                text,
    created_at                timestamptz not null default now()
);

-- Every call to Plaid: method, outcome, Plaid's request id (what Plaid support asks for).
create table plaid_api_calls (
    id                        bigint generated always as identity primary key,
    method                    text not null,
    item_id                   uuid references items (id) on delete set null,
    request_id                text,
    http_status               integer,
    error_type                text,
    error_code                text,
    duration_ms               integer not null,
    created_at                timestamptz not null default now()
);
create index plaid_api_calls_item_idx on plaid_api_calls (item_id, created_at desc);
create index plaid_api_calls_request_idx on plaid_api_calls (request_id);
