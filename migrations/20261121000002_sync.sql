-- The sync worker: a rate limiter for Plaid calls shared by every worker process, and timing
-- columns on sync runs.

-- One row per granted call, per bucket (`client:/transactions/sync`, `item:<uuid>`). Plaid's
-- limits are rolling windows ("50 calls in any minute"), so the limiter keeps a log of grants
-- and allows a call only while fewer than the limit fall inside the window: exact, unlike a
-- token bucket or a fixed per-minute counter, both of which let up to twice the limit through
-- across a window boundary. Rows older than the window are deleted as calls are made.
create table rate_limit_grants (
    bucket                    text not null,
    granted_at                timestamptz not null
);
create index rate_limit_grants_bucket_idx on rate_limit_grants (bucket, granted_at);

-- Takes one grant in every bucket with a limit > 0, or none: returns granted = true, or false
-- with how long to wait before the tightest bucket has room. One decision at a time across all
-- processes (a transaction-scoped advisory lock), on the database's clock, so workers on
-- different hosts share one view of time.
create function sync_rate_limit_take(p_buckets text[], p_limits integer[], p_window_ms bigint)
returns table (granted boolean, wait_seconds double precision, limited_bucket text)
language plpgsql as $$
declare
    v_window   interval := make_interval(secs => p_window_ms / 1000.0);
    v_now      timestamptz;
    v_count    integer;
    v_expiry   timestamptz;
    v_wait     double precision := 0;
    v_bucket   text := null;
begin
    perform pg_advisory_xact_lock(hashtextextended('plaidhook.sync_rate_limit', 0));
    -- clock_timestamp, not now(): the lock may have been waited for.
    v_now := clock_timestamp();
    for i in 1 .. coalesce(array_length(p_buckets, 1), 0) loop
        continue when p_limits[i] <= 0;
        select count(*) into v_count from rate_limit_grants
         where bucket = p_buckets[i] and granted_at > v_now - v_window;
        if v_count >= p_limits[i] then
            -- Room appears when the (count - limit + 1)th oldest grant leaves the window.
            select granted_at + v_window into v_expiry from rate_limit_grants
             where bucket = p_buckets[i] and granted_at > v_now - v_window
             order by granted_at offset v_count - p_limits[i] limit 1;
            if extract(epoch from v_expiry - v_now) > v_wait or v_bucket is null then
                v_wait := greatest(extract(epoch from v_expiry - v_now), 0.001);
                v_bucket := p_buckets[i];
            end if;
        end if;
    end loop;
    if v_bucket is not null then
        return query select false, v_wait, v_bucket;
        return;
    end if;
    insert into rate_limit_grants (bucket, granted_at)
    select b.bucket, v_now from unnest(p_buckets, p_limits) as b(bucket, lim) where b.lim > 0;
    delete from rate_limit_grants where bucket = any(p_buckets) and granted_at <= v_now - v_window;
    -- Now and then, forget the grants of Items that have not synced for a while.
    if random() < 0.01 then
        delete from rate_limit_grants where granted_at <= v_now - v_window;
    end if;
    return query select true, 0::double precision, null::text;
end;
$$;

-- Where a sync run's time went: calling Plaid (including waits for the rate limiter) versus
-- writing; duration is finished_at - started_at.
alter table sync_runs
    add column fetch_ms               integer,
    add column rate_limit_wait_ms     integer not null default 0;
create index sync_runs_running_idx on sync_runs (item_id) where outcome = 'running';
