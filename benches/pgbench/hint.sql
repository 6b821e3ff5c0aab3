-- The statement that marks an Item dirty and looks in pg_locks for its sync lock
-- (`sync::lock::mark_dirty`, with a webhook's arrival time and `only_without_cursor` false).
-- `-D look=0` leaves the look out: its own cost is the difference between the two.
\set n random(1, 2000)
update items set
       last_webhook_at = case when now() is not null
                               and (last_webhook_at is null or last_webhook_at < now())
                              then now() else last_webhook_at end,
       sync_requested_at = case when status <> 'removed' and (not false or sync_cursor is null)
                                then now() else sync_requested_at end
 where plaid_item_id = 'bench-item-' || :n
returning id, status,
       (status <> 'removed' and (not false or sync_cursor is null)) as marked,
       case when :look = 1 then
           (status <> 'removed' and (not false or sync_cursor is null) and exists (
               select 1 from pg_locks
               where locktype = 'advisory' and objsubid = 1 and granted
                 and database = (select oid from pg_database where datname = current_database())
                 and classid::bigint = (item_sync_lock_key(id) >> 32) & 4294967295
                 and objid::bigint = item_sync_lock_key(id) & 4294967295))
       else false end as held;
