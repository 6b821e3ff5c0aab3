-- The outbox keeps each event as the JSON text it is published as (`json`), not as `jsonb`.
--
-- A sync's events carry every transaction it changed, so building them is most of a large
-- sync's write beyond the rows themselves. `json_agg` appends each staged object's text, where
-- `jsonb_agg` rebuilt every object in jsonb's binary form (measured ~2.5x slower for the same
-- events), and the relay then printed that form back to text to publish it. Nothing looks
-- inside a stored event but tests and operators, and `->`/`->>` work on `json` too.
--
-- Rewrites the table (retention keeps it short); the type change resets nothing else, but the
-- compression is set again so it holds whatever the server's default.
alter table outbox alter column payload type json using payload::json;
alter table outbox alter column payload set compression lz4;
