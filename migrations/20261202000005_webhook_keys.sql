-- Plaid's webhook verification keys, as fetched from /webhook_verification_key/get, shared by
-- every replica: a key one process fetched verifies on all, and a new process starts warm
-- instead of spending its key-fetch budget (which forged kids also draw on). Public keys only.
create table webhook_keys (
    kid                       text primary key,
    jwk                       jsonb not null,
    expired_at                bigint,
    fetched_at                timestamptz not null default now()
);
