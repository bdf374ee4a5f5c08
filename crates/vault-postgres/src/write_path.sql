-- Read inside every write transaction ($1 the audit lock class, $2 the vault's schema), after the
-- vault's tables are locked against schema changes: takes the audit lock, then lists the
-- identity of everything that acts on the vault's writes, found through the catalogs' indexes (a
-- fraction of a millisecond): the tables' persistence and row security, their indexes (valid,
-- unique, ready), constraints, column defaults and generated columns, triggers, rewrite rules,
-- row-security policies and child tables. Compared with the same list taken when the whole schema
-- last matched the migrations'.
WITH lock AS MATERIALIZED (
  SELECT pg_catalog.pg_advisory_xact_lock($1, pg_catalog.hashtext($2::text)) AS l
), t AS MATERIALIZED (
  SELECT c.oid, c.relpersistence, c.relrowsecurity, c.relforcerowsecurity
  FROM lock, pg_catalog.unnest(ARRAY['secrets', 'hpke_keys', 'tokens', 'api_keys', 'audit', 'audit_head', 'schema_migrations']) AS name,
    pg_catalog.pg_class c
  WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(pg_catalog.quote_ident($2::text) OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) name)
)
SELECT pg_catalog.string_agg(item, ',' ORDER BY item) FROM (
  SELECT 'r' OPERATOR(pg_catalog.||) c.oid::text OPERATOR(pg_catalog.||) c.relpersistence::text OPERATOR(pg_catalog.||) c.relrowsecurity::text OPERATOR(pg_catalog.||) c.relforcerowsecurity::text AS item FROM t c
  UNION ALL SELECT 'i' OPERATOR(pg_catalog.||) i.indexrelid::text OPERATOR(pg_catalog.||) i.indisvalid::text OPERATOR(pg_catalog.||) i.indisunique::text OPERATOR(pg_catalog.||) i.indisready::text FROM t, LATERAL (SELECT * FROM pg_catalog.pg_index i WHERE i.indrelid OPERATOR(pg_catalog.=) t.oid OFFSET 0) i
  UNION ALL SELECT 'c' OPERATOR(pg_catalog.||) k.oid::text FROM t, LATERAL (SELECT * FROM pg_catalog.pg_constraint k WHERE k.conrelid OPERATOR(pg_catalog.=) t.oid OFFSET 0) k
  UNION ALL SELECT 'd' OPERATOR(pg_catalog.||) d.oid::text FROM t, LATERAL (SELECT * FROM pg_catalog.pg_attrdef d WHERE d.adrelid OPERATOR(pg_catalog.=) t.oid OFFSET 0) d
  UNION ALL SELECT 'g' OPERATOR(pg_catalog.||) g.oid::text FROM t, LATERAL (SELECT * FROM pg_catalog.pg_trigger g WHERE g.tgrelid OPERATOR(pg_catalog.=) t.oid OFFSET 0) g
  UNION ALL SELECT 'w' OPERATOR(pg_catalog.||) w.oid::text FROM t, LATERAL (SELECT * FROM pg_catalog.pg_rewrite w WHERE w.ev_class OPERATOR(pg_catalog.=) t.oid OFFSET 0) w
  UNION ALL SELECT 'p' OPERATOR(pg_catalog.||) p.oid::text FROM t, LATERAL (SELECT * FROM pg_catalog.pg_policy p WHERE p.polrelid OPERATOR(pg_catalog.=) t.oid OFFSET 0) p
  UNION ALL SELECT 'h' OPERATOR(pg_catalog.||) h.inhrelid::text FROM t, LATERAL (SELECT * FROM pg_catalog.pg_inherits h WHERE h.inhparent OPERATOR(pg_catalog.=) t.oid OFFSET 0) h
) s
