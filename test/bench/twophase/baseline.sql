-- What a DBA writes by hand: each prepared transaction with its lock count (pg_locks by its vxid).
SELECT p.gid, p.database, p.owner, p.prepared, count(l.*)
  FROM pg_prepared_xacts p
  JOIN pg_locks x ON x.locktype = 'transactionid' AND x.transactionid = p.transaction AND x.pid IS NULL
  LEFT JOIN pg_locks l ON l.virtualtransaction = x.virtualtransaction AND l.pid IS NULL
 GROUP BY 1, 2, 3, 4;
