-- Read inside every write transaction, in the statement that takes the audit lock ($1 the lock
-- class, $2 the vault's schema). Column 1 counts what the migrations never make; columns 2 and 3
-- digest the constraints and indexes, compared with the migrations' own.
SELECT
    (SELECT pg_catalog.count(*) FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid WHERE c.relnamespace = n.oid)
  + (SELECT pg_catalog.count(*) FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_class c ON c.oid = r.ev_class WHERE c.relnamespace = n.oid)
  + (SELECT pg_catalog.count(*) FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_class c ON c.oid = p.polrelid WHERE c.relnamespace = n.oid)
  + (SELECT pg_catalog.count(*) FROM pg_catalog.pg_class c WHERE c.relnamespace = n.oid AND (c.relrowsecurity OR c.relforcerowsecurity OR c.relpersistence OPERATOR(pg_catalog.<>) 'p' OR c.relkind NOT IN ('r', 'i', 'S')))
  + (SELECT pg_catalog.count(*) FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhparent WHERE c.relnamespace = n.oid)
  + (SELECT pg_catalog.count(*) FROM pg_catalog.pg_attrdef d JOIN pg_catalog.pg_class c ON c.oid = d.adrelid WHERE c.relnamespace = n.oid)
  + (SELECT pg_catalog.count(*) FROM pg_catalog.pg_proc p WHERE p.pronamespace = n.oid)
  + (SELECT pg_catalog.count(*) FROM pg_catalog.pg_operator o WHERE o.oprnamespace = n.oid)
  + (SELECT pg_catalog.count(*) FROM pg_catalog.pg_type y WHERE y.typnamespace = n.oid AND y.typrelid OPERATOR(pg_catalog.=) 0 AND y.typelem OPERATOR(pg_catalog.=) 0)
  + (SELECT pg_catalog.count(*) FROM pg_catalog.pg_collation l WHERE l.collnamespace = n.oid)
  + (SELECT pg_catalog.count(*) FROM pg_catalog.pg_conversion v WHERE v.connamespace = n.oid),
    (SELECT pg_catalog.md5(pg_catalog.string_agg(c.relname OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) k.conname OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) pg_catalog.pg_get_constraintdef(k.oid), ',' ORDER BY c.relname, k.conname))
       FROM pg_catalog.pg_constraint k JOIN pg_catalog.pg_class c ON c.oid = k.conrelid WHERE c.relnamespace = n.oid),
    (SELECT pg_catalog.md5(pg_catalog.string_agg(x.relname OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) i.indisunique::text OPERATOR(pg_catalog.||) i.indisvalid::text OPERATOR(pg_catalog.||) i.indisready::text OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) pg_catalog.regexp_replace(pg_catalog.pg_get_indexdef(i.indexrelid), ' ON \S+ USING ', ' ON ' OPERATOR(pg_catalog.||) c.relname OPERATOR(pg_catalog.||) ' USING '), ',' ORDER BY x.relname))
       FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indrelid JOIN pg_catalog.pg_class x ON x.oid = i.indexrelid WHERE c.relnamespace = n.oid)
FROM pg_catalog.pg_advisory_xact_lock($1, pg_catalog.hashtext($2::text)), pg_catalog.pg_namespace n
WHERE n.nspname::text OPERATOR(pg_catalog.=) $2::text
