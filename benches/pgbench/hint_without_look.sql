-- The same update as hint_with_look.sql without the pg_locks look: the look's own cost is the
-- difference between the two.
\set n random(1, 2000)
update items set
       last_webhook_at = case when now() is not null
                               and (last_webhook_at is null or last_webhook_at < now())
                              then now() else last_webhook_at end,
       sync_requested_at = case when status <> 'removed' and (not false or sync_cursor is null)
                                then now() else sync_requested_at end
 where plaid_item_id = 'bench-item-' || :n
returning id, status,
       (status <> 'removed' and (not false or sync_cursor is null)) as marked;
