-- Read the row's version, then update through consistency.update_versioned.
\set id random(1, 100000)
\set price random(1, 1000000)
SELECT version AS v FROM items_fn WHERE id = :id \gset
SELECT consistency.update_versioned('items_fn', jsonb_build_object('id', :id::int), :v,
									jsonb_build_object('price', :price::int));
