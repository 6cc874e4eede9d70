-- One small write transaction: what every token is minted for.
\set id random(1, 10000)
UPDATE rw_accounts SET balance = balance + 1 WHERE id = :id;
