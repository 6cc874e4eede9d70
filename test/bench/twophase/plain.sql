-- The floor: reading both sources a listing needs, nothing joined.
SELECT * FROM pg_prepared_xacts;
SELECT count(*) FROM pg_locks;
