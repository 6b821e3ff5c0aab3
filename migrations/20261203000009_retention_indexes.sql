-- Retention deletes old rows in batches by age (see `retention`): each table's age column is
-- indexed so a batch finds its rows without scanning the table.
create index outbox_published_idx on outbox (published_at) where published_at is not null;
create index plaid_api_calls_created_idx on plaid_api_calls (created_at);
create index sync_runs_finished_idx on sync_runs (finished_at) where outcome <> 'running';
create index item_status_history_created_idx on item_status_history (created_at);
