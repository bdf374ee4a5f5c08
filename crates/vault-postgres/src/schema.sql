-- The vault's schema ($1) as the catalogs describe it, one sorted line per relation (kind,
-- persistence, the scratch schema's temporary tables counted as permanent, tablespace, row security), column (type, storage, default, identity, generated), index,
-- constraint, trigger, rule, row-security policy, child table, and every other object in the
-- schema (functions, operators, types, collations, operator classes and families, extended
-- statistics, conversions): compared with the same description of the migrations applied to a
-- scratch schema. Runs with search_path = pg_catalog, so every name below is a builtin.
SELECT coalesce(string_agg(line, E'\n' ORDER BY line), '') FROM (SELECT oid FROM pg_namespace WHERE nspname::text = $1::text) n, LATERAL (
  SELECT 'relation ' || c.relname || ' ' || c.relkind::text || ' persistence=' || (CASE c.relpersistence WHEN 't' THEN 'p' ELSE c.relpersistence END)::text || ' tablespace=' || coalesce((SELECT spcname::text FROM pg_tablespace WHERE oid = c.reltablespace), '') || ' rls=' || c.relrowsecurity::text || ' ' || c.relforcerowsecurity::text AS line
    FROM pg_class c WHERE c.relnamespace = n.oid
  UNION ALL
  SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' notnull=' || a.attnotnull::text || ' storage=' || a.attstorage::text || ' identity=' || a.attidentity::text || ' generated=' || a.attgenerated::text || ' collation=' || a.attcollation::text || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT 'index ' || regexp_replace(pg_get_indexdef(i.indexrelid), ' ON \S+ USING ', ' ON ' || c.relname || ' USING ') || ' valid=' || i.indisvalid::text
    FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relnamespace = n.oid
  UNION ALL
  SELECT 'constraint ' || c.relname || ' ' || k.conname || ' ' || pg_get_constraintdef(k.oid)
    FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid WHERE c.relnamespace = n.oid
  UNION ALL
  SELECT 'trigger ' || c.relname || ' ' || t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE c.relnamespace = n.oid
  UNION ALL
  SELECT 'rule ' || c.relname || ' ' || r.rulename FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class WHERE c.relnamespace = n.oid
  UNION ALL
  SELECT 'policy ' || c.relname || ' ' || p.polname FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid WHERE c.relnamespace = n.oid
  UNION ALL
  SELECT 'child ' || c.relname || ' of ' || i.inhparent::regclass::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class pc ON pc.oid = i.inhparent WHERE pc.relnamespace = n.oid
  UNION ALL
  SELECT 'function ' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' FROM pg_proc p WHERE p.pronamespace = n.oid
  UNION ALL
  SELECT 'operator ' || o.oprname || '(' || o.oprleft::regtype::text || ', ' || o.oprright::regtype::text || ')' FROM pg_operator o WHERE o.oprnamespace = n.oid
  UNION ALL
  SELECT 'type ' || y.typname || ' ' || y.typtype::text FROM pg_type y WHERE y.typnamespace = n.oid AND y.typrelid = 0 AND y.typelem = 0
  UNION ALL
  SELECT 'collation ' || l.collname FROM pg_collation l WHERE l.collnamespace = n.oid
  UNION ALL
  SELECT 'operator class ' || o.opcname FROM pg_opclass o WHERE o.opcnamespace = n.oid
  UNION ALL
  SELECT 'operator family ' || f.opfname FROM pg_opfamily f WHERE f.opfnamespace = n.oid
  UNION ALL
  SELECT 'statistics ' || x.stxname FROM pg_statistic_ext x WHERE x.stxnamespace = n.oid
  UNION ALL
  SELECT 'conversion ' || v.conname FROM pg_conversion v WHERE v.connamespace = n.oid
) s
