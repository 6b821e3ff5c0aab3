-- The rate limiter's grants occupy the window until `window` after the call's response, not
-- after the grant.
--
-- Plaid counts a call when it arrives, which is after plaidhook granted it and before its
-- response comes back. A grant that occupies from the moment it is granted until `window` after
-- the response therefore covers the whole of Plaid's count of that call, on the database's
-- clock alone: no margin for network jitter is needed, and the next window's calls go as soon
-- as each earlier call's window ends. A call still in flight occupies the window; if its
-- process died before recording the response, the grant ends `call bound + window` after it
-- was granted, the call bound being the Plaid client's timeout, past which no response can come.

alter table rate_limit_grants
    add column grant_id     bigint,
    add column completed_at timestamptz,
    add column expires_at   timestamptz;
-- Grants taken before this migration: occupied as they did (granted + window + the old margin).
update rate_limit_grants
   set completed_at = granted_at, expires_at = granted_at + interval '61 seconds';
alter table rate_limit_grants alter column expires_at set not null;

drop index rate_limit_grants_bucket_idx;
create index rate_limit_grants_bucket_expiry_idx on rate_limit_grants (bucket, expires_at);
create index rate_limit_grants_in_flight_idx on rate_limit_grants (grant_id)
    where completed_at is null;

create sequence rate_limit_grant_ids;

drop function sync_rate_limit_take(text[], integer[], bigint);

-- Takes one grant in every bucket with a limit > 0, or none: returns granted = true and the
-- grant's id, or false with how long to wait before the tightest bucket may have room. One
-- decision at a time across all processes (a transaction-scoped advisory lock), on the
-- database's clock. `p_completed`, when given, is an earlier grant of the caller whose call has
-- returned (recorded first, in the same statement: a sync's calls are sequential).
create function sync_rate_limit_take(
    p_buckets   text[],
    p_limits    integer[],
    p_window_ms bigint,
    p_call_ms   bigint,
    p_completed bigint
)
returns table (granted boolean, wait_seconds double precision, limited_bucket text, grant_id bigint)
language plpgsql as $$
#variable_conflict use_column
declare
    v_window   interval := make_interval(secs => p_window_ms / 1000.0);
    v_call     interval := make_interval(secs => p_call_ms / 1000.0);
    v_now      timestamptz;
    v_count    integer;
    v_room     timestamptz;
    v_wait     double precision := 0;
    v_bucket   text := null;
    v_grant    bigint;
begin
    perform pg_advisory_xact_lock(hashtextextended('plaidhook.sync_rate_limit', 0));
    -- clock_timestamp, not now(): the lock may have been waited for.
    v_now := clock_timestamp();
    if p_completed is not null then
        update rate_limit_grants g
           set completed_at = v_now, expires_at = v_now + v_window
         where g.grant_id = p_completed and g.completed_at is null;
    end if;
    for i in 1 .. coalesce(array_length(p_buckets, 1), 0) loop
        continue when p_limits[i] <= 0;
        select count(*) into v_count from rate_limit_grants g
         where g.bucket = p_buckets[i] and g.expires_at > v_now;
        if v_count >= p_limits[i] then
            -- Room may appear when the (count - limit + 1)th grant to end does. A call still in
            -- flight ends no sooner than a window from now (its response is still to come).
            select least(g.expires_at, v_now + v_window) into v_room from rate_limit_grants g
             where g.bucket = p_buckets[i] and g.expires_at > v_now
             order by least(g.expires_at, v_now + v_window)
             offset v_count - p_limits[i] limit 1;
            if extract(epoch from v_room - v_now) > v_wait or v_bucket is null then
                v_wait := greatest(extract(epoch from v_room - v_now), 0.001);
                v_bucket := p_buckets[i];
            end if;
        end if;
    end loop;
    if v_bucket is not null then
        return query select false, v_wait, v_bucket, null::bigint;
        return;
    end if;
    v_grant := nextval('rate_limit_grant_ids');
    insert into rate_limit_grants (bucket, granted_at, grant_id, expires_at)
    select b.bucket, v_now, v_grant, v_now + v_call + v_window
      from unnest(p_buckets, p_limits) as b(bucket, lim) where b.lim > 0;
    delete from rate_limit_grants g where g.bucket = any(p_buckets) and g.expires_at <= v_now;
    -- Now and then, forget the grants of Items that have not synced for a while.
    if random() < 0.01 then
        delete from rate_limit_grants g where g.expires_at <= v_now;
    end if;
    return query select true, 0::double precision, null::text, v_grant;
end;
$$;

-- Records that a granted call has returned: its grant now ends a window from now.
create function sync_rate_limit_complete(p_grant_id bigint, p_window_ms bigint)
returns void
language plpgsql as $$
declare
    v_now timestamptz := clock_timestamp();
begin
    update rate_limit_grants
       set completed_at = v_now, expires_at = v_now + make_interval(secs => p_window_ms / 1000.0)
     where grant_id = p_grant_id and completed_at is null;
end;
$$;
