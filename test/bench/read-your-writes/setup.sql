CREATE TABLE rw_accounts (id int PRIMARY KEY, balance bigint NOT NULL) WITH (fillfactor = 50);
INSERT INTO rw_accounts SELECT g, 0 FROM generate_series(1, 10000) g;
CREATE TABLE rw_counter (id int PRIMARY KEY, v bigint NOT NULL);
INSERT INTO rw_counter VALUES (1, 0);
VACUUM ANALYZE rw_accounts, rw_counter;
