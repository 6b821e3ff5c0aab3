-- A spooled webhook the broker keeps refusing (nacked, returned) is parked with its reason
-- after a few attempts, so it cannot hold back the rows behind it; an operator lists and
-- replays parked rows (API, `plaidhook spool`).
alter table webhook_spool add column parked_at timestamptz;
create index webhook_spool_pending_idx on webhook_spool (id) where parked_at is null;
