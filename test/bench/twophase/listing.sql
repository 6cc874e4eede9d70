SELECT count(*) FROM consistency.prepared_xacts();
