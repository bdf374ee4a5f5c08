//! Scanning databases: every table of a SQLite file or a PostgreSQL database, column by column,
//! all rows or the first `--sample N` of each table. Each cell goes through the same detector as
//! text, with the column's name as its label (so an `order_id` column is not taken for card
//! numbers, and a `phone` column's bare digits are phone numbers). Findings are reported per
//! table and column with the row's key.
//!
//! SQLite columns of every declared type but floating point are read (card numbers are found in
//! INTEGER columns too); PostgreSQL columns of the text types, JSON, XML, arrays, `bigint` and
//! `numeric`, read as text.

use crate::detect;
use crate::report::{Location, Place, ProblemKind, Tally};
use crate::{Options, Progress};
use fieldseal_core::classify::{Sensitivity, classify};
use std::path::Path;

/// One table being scanned: where its findings go.
struct TableScan {
    columns: Vec<(String, Location)>,
    key_names: Vec<String>,
    rows: u64,
}

impl TableScan {
    fn new(database: &str, table: &str, columns: Vec<String>, key_names: Vec<String>) -> Self {
        let columns = columns
            .into_iter()
            .map(|c| {
                let location = Location::Column {
                    database: database.to_owned(),
                    table: table.to_owned(),
                    column: c.clone(),
                };
                (c, location)
            })
            .collect();
        Self {
            columns,
            key_names,
            rows: 0,
        }
    }

    /// Scans one row: its key values, then one value (or none) per column.
    fn row(
        &mut self,
        keys: &[Option<String>],
        cells: &[Option<String>],
        options: &Options,
        tally: &mut Tally,
    ) {
        self.rows += 1;
        let mut place: Option<Place> = None;
        for ((name, location), cell) in self.columns.iter().zip(cells) {
            let Some(text) = cell else { continue };
            let bytes = text.as_bytes();
            detect::scan(
                bytes,
                0,
                bytes.len(),
                Some(name),
                options.rules,
                &mut |hit| {
                    let p =
                        place.get_or_insert_with(|| row_place(&self.key_names, keys, self.rows));
                    tally.add(location, p.clone(), hit);
                },
            );
        }
    }

    fn finish(self, tally: &mut Tally) {
        tally.stats.tables += 1;
        tally.stats.columns += self.columns.len() as u64;
        tally.stats.rows += self.rows;
    }
}

/// A row's place: `id=42`, or `row 17` when the key is missing or is itself personal data.
fn row_place(names: &[String], keys: &[Option<String>], ordinal: u64) -> Place {
    let personal = keys
        .iter()
        .flatten()
        .any(|k| classify(k).sensitivity != Sensitivity::None);
    if names.is_empty() || personal || keys.iter().any(Option::is_none) {
        return Place::Row(format!("row {ordinal}"));
    }
    let parts: Vec<String> = names
        .iter()
        .zip(keys.iter().flatten())
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    Place::Row(parts.join(","))
}

/// `"name"`, with inner quotes doubled: an SQL identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// ` LIMIT n` for `--sample n`.
fn limit(options: &Options) -> String {
    options
        .sample
        .map(|n| format!(" LIMIT {n}"))
        .unwrap_or_default()
}

/// Scans every table of the SQLite file at `path`, read-only.
pub fn scan_sqlite(path: &Path, options: &Options, tally: &mut Tally, progress: &Progress) {
    use rusqlite::{Connection, OpenFlags, types::ValueRef};
    let database = format!("sqlite:{}", path.display());
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match Connection::open_with_flags(path, flags) {
        Ok(c) => c,
        Err(e) => return tally.problem(database, ProblemKind::DatabaseUnavailable, e.to_string()),
    };
    let tables: rusqlite::Result<Vec<String>> = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        )
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect());
    let tables = match tables {
        Ok(t) => t,
        Err(e) => return tally.problem(database, ProblemKind::DatabaseUnavailable, e.to_string()),
    };
    let text = |v: ValueRef<'_>| -> Option<String> {
        match v {
            ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Integer(i) => Some(i.to_string()),
            ValueRef::Blob(b) => std::str::from_utf8(b)
                .ok()
                .filter(|s| !s.contains('\0'))
                .map(str::to_owned),
            ValueRef::Real(_) | ValueRef::Null => None,
        }
    };
    for table in tables {
        let result = (|| -> rusqlite::Result<TableScan> {
            let mut st =
                conn.prepare("SELECT name, type, pk FROM pragma_table_info(?1) ORDER BY cid")?;
            let info: Vec<(String, String, i64)> = st
                .query_map([&table], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let mut keys: Vec<(i64, String)> = info
                .iter()
                .filter(|c| c.2 > 0)
                .map(|c| (c.2, c.0.clone()))
                .collect();
            keys.sort();
            let mut key_names: Vec<String> = keys.into_iter().map(|k| k.1).collect();
            let mut key_exprs: Vec<String> = key_names.iter().map(|k| quote(k)).collect();
            if key_names.is_empty() {
                key_names.push("rowid".to_owned());
                key_exprs.push("rowid".to_owned());
            }
            let columns: Vec<String> = info
                .into_iter()
                .filter(|c| {
                    let t = c.1.to_ascii_uppercase();
                    !(t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB"))
                })
                .map(|c| c.0)
                .collect();
            let mut scan = TableScan::new(&database, &table, columns.clone(), key_names);
            if columns.is_empty() {
                return Ok(scan);
            }
            let exprs: Vec<String> = key_exprs
                .iter()
                .cloned()
                .chain(columns.iter().map(|c| quote(c)))
                .collect();
            let sql = format!(
                "SELECT {} FROM {}{}",
                exprs.join(", "),
                quote(&table),
                limit(options)
            );
            let mut st = conn.prepare(&sql)?;
            let mut rows = st.query([])?;
            let nkeys = key_exprs.len();
            while let Some(row) = rows.next()? {
                let keys: Vec<Option<String>> = (0..nkeys)
                    .map(|i| row.get_ref(i).ok().and_then(text))
                    .collect();
                let cells: Vec<Option<String>> = (nkeys..nkeys + columns.len())
                    .map(|i| row.get_ref(i).ok().and_then(text))
                    .collect();
                scan.row(&keys, &cells, options, tally);
                progress.rows(1);
            }
            Ok(scan)
        })();
        match result {
            Ok(scan) => scan.finish(tally),
            Err(e) => tally.problem(
                format!("{database} {table}"),
                ProblemKind::TableUnreadable,
                e.to_string(),
            ),
        }
    }
}

/// PostgreSQL data types whose values are read as text.
const PG_TEXT_TYPES: &[&str] = &[
    "text",
    "character varying",
    "character",
    "json",
    "jsonb",
    "xml",
    "ARRAY",
    "USER-DEFINED",
    "bigint",
    "numeric",
];

/// `url` without its password (in the user info or a `password=` parameter).
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:***@{host}"),
            None => format!("{user}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail: String = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => p.to_owned(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Scans the text-like columns of every table of the PostgreSQL database at `url`.
pub fn scan_postgres(url: &str, options: &Options, tally: &mut Tally, progress: &Progress) {
    use postgres::fallible_iterator::FallibleIterator;
    let database = redact_url(url);
    let config: postgres::Config = match url.parse() {
        Ok(c) => c,
        Err(e) => return tally.problem(database, ProblemKind::DatabaseUnavailable, e.to_string()),
    };
    let mut config = config;
    config.application_name("fieldseal-scan");
    let mut client = match config.connect(postgres::NoTls) {
        Ok(c) => c,
        Err(e) => return tally.problem(database, ProblemKind::DatabaseUnavailable, e.to_string()),
    };
    let columns = client.query(
        "SELECT c.table_schema::text, c.table_name::text, c.column_name::text, c.data_type::text \
         FROM information_schema.columns c JOIN information_schema.tables t \
         ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
         WHERE t.table_type = 'BASE TABLE' \
         AND c.table_schema NOT IN ('pg_catalog', 'information_schema') \
         AND c.table_schema NOT LIKE 'pg\\_%' \
         ORDER BY 1, 2, c.ordinal_position",
        &[],
    );
    let columns = match columns {
        Ok(rows) => rows,
        Err(e) => return tally.problem(database, ProblemKind::DatabaseUnavailable, e.to_string()),
    };
    // (schema, table) -> text-like columns, in order.
    let mut tables: Vec<((String, String), Vec<String>)> = Vec::new();
    for row in &columns {
        let key: (String, String) = (row.get(0), row.get(1));
        let (name, ty): (String, String) = (row.get(2), row.get(3));
        if tables.last().is_none_or(|(k, _)| *k != key) {
            tables.push((key, Vec::new()));
        }
        if PG_TEXT_TYPES.contains(&ty.as_str())
            && let Some((_, cols)) = tables.last_mut()
        {
            cols.push(name);
        }
    }
    for ((schema, table), cols) in tables {
        let qualified = format!("{}.{}", quote(&schema), quote(&table));
        let label = format!("{schema}.{table}");
        if client.is_closed() {
            tally.problem(
                format!("{database} {label}"),
                ProblemKind::ConnectionLost,
                "not scanned: the database connection was lost".to_owned(),
            );
            continue;
        }
        let result = (|| -> Result<TableScan, postgres::Error> {
            let keys = client.query(
                "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a \
                 ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                 WHERE i.indrelid = $1::text::regclass AND i.indisprimary \
                 ORDER BY array_position(i.indkey::int2[], a.attnum)",
                &[&qualified],
            )?;
            let mut key_names: Vec<String> = keys.iter().map(|r| r.get(0)).collect();
            let mut key_exprs: Vec<String> = key_names
                .iter()
                .map(|k| format!("{}::text", quote(k)))
                .collect();
            if key_names.is_empty() {
                key_names.push("ctid".to_owned());
                key_exprs.push("ctid::text".to_owned());
            }
            let mut scan = TableScan::new(&database, &label, cols.clone(), key_names);
            if cols.is_empty() {
                return Ok(scan);
            }
            let exprs: Vec<String> = key_exprs
                .iter()
                .cloned()
                .chain(cols.iter().map(|c| format!("{}::text", quote(c))))
                .collect();
            let sql = format!(
                "SELECT {} FROM {qualified}{}",
                exprs.join(", "),
                limit(options)
            );
            let mut rows = client.query_raw(&sql, std::iter::empty::<&str>())?;
            let nkeys = key_exprs.len();
            while let Some(row) = rows.next()? {
                let get = |i: usize| row.try_get::<_, Option<String>>(i).ok().flatten();
                let keys: Vec<Option<String>> = (0..nkeys).map(get).collect();
                let cells: Vec<Option<String>> = (nkeys..nkeys + cols.len()).map(get).collect();
                scan.row(&keys, &cells, options, tally);
                progress.rows(1);
            }
            Ok(scan)
        })();
        match result {
            Ok(scan) => scan.finish(tally),
            Err(e) => {
                // The server ending the session (terminated, shutting down) answers with an
                // error before it closes the connection: the connection is lost all the same.
                let ended = e
                    .code()
                    .is_some_and(|c| c.code().starts_with("57P") || c.code().starts_with("08"));
                let lost = client.is_closed() || e.is_closed() || ended;
                let kind = if lost {
                    ProblemKind::ConnectionLost
                } else {
                    ProblemKind::TableUnreadable
                };
                tally.problem(format!("{database} {label}"), kind, e.to_string());
            }
        }
    }
}
