-- Each account as Plaid last sent it (unknown fields, nulls and decimal balances as written),
-- beside the typed columns plaidhook reads. Null for rows written before this column existed,
-- until the Item's next sync or balance refresh.
alter table accounts add column raw jsonb;
