-- Items are looked up by the app's user id (`GET /api/v1/items?client_user_id=`): one user may
-- have several Items, and the list pages by id within them.
create index items_client_user_idx on items (client_user_id, id);
