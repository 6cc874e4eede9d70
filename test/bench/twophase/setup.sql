-- Fifty tables the prepared transactions lock, and the decision log's coordinator side.
SELECT format('CREATE TABLE bench_t%s (id int PRIMARY KEY)', g) FROM generate_series(1, 50) g \gexec
