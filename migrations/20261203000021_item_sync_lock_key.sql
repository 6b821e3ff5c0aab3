-- The advisory lock key of an Item's sync, as `sync::lock::lock_key` computes it: the two
-- 64-bit halves of the Item's UUID, XORed. With it, the statement that marks an Item dirty can
-- also look whether the Item's sync lock is held, in the same round trip.
create function item_sync_lock_key(p_item uuid) returns bigint
language sql immutable strict parallel safe as $$
    select ('x' || substr(replace(p_item::text, '-', ''), 1, 16))::bit(64)::bigint
         # ('x' || substr(replace(p_item::text, '-', ''), 17, 16))::bit(64)::bigint
$$;
