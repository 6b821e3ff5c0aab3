-- One sync call's rate-limit decision and its completion, with Plaid's per-Item limit and no
-- client limit (what `scripts/bench-e2e` runs with). The Item is one of 20,000, so that at
-- pgbench's pace an Item's bucket holds a handful of grants, as at 200 syncs a second over
-- 2,000 Items, and never reaches the limit (a refused take has no grant to complete).
\set n random(1, 20000)
select grant_id as g from sync_rate_limit_take(array['item:' || :n], array[50], 60000, 31000, null) \gset
select sync_rate_limit_complete(:g, 60000);
