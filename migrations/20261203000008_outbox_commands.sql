-- The outbox carries commands as well as events: a row with an `exchange` is published there
-- (mandatory, confirmed) with `amqp_type` as its AMQP type instead of going to plaid.events.
-- The first sync request of a new Item is such a row, written in the transaction that links
-- the Item, so a linked Item always gets its first sync.
alter table outbox add column exchange text, add column amqp_type text;
