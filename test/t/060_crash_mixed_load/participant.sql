-- test/t/060_crash_mixed_load/participant.sql: a 2PC participant database (ledger, warehouse).
-- The coordinator prepares one transfer per distributed transaction here, through dblink as
-- app (or straggler); the row exists after the resolution exactly when the coordinator logged commit.
CREATE TABLE public.transfers (
	gid    text PRIMARY KEY,
	amount int  NOT NULL
);
GRANT SELECT, INSERT ON public.transfers TO mix_worker;
