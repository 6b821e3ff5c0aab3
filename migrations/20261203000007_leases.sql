-- Time-bounded leases for work that runs in one process at a time across replicas (the
-- scheduler's rounds). Unlike a transaction-scoped advisory lock, a lease holds no database
-- connection while its work runs, so that work may use the pool freely; a holder that dies
-- leaves a lease that expires on its own.
create table leases (
    name       text primary key,
    holder     uuid not null,
    expires_at timestamptz not null
);
