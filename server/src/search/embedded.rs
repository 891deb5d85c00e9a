//! The built-in engine: documents in `search_documents`, candidates from the trigram index
//! (FTS5 on SQLite, pg_trgm on Postgres), checked and ranked in [`super::text`]'s terms.

use std::cmp::Reverse;
use std::collections::HashMap;

use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, QueryResult, Statement, Value};

use super::documents::terms_of;
use super::text::{self, Fields};
use super::{Hit, MAX_RESULTS, SearchDocument, SearchRequest, SearchResults};
use crate::events::relay::dialect;

/// A hit's rank: total typos, fields matched (code first), prefix matches, recency.
type Rank = (usize, usize, usize, Reverse<i64>);

/// Candidates checked per query: the best this many by the index's own ranking.
const CANDIDATES: u64 = 2000;

const COLUMNS: &str = "doc_id, tenant_id, doc_type, title, code, code_key, barcode, body, \
                       status, location_codes, in_stock, available, updated_at";

/// Postgres: the stock fields of item documents (`available`, `in_stock`, `location_codes`,
/// as [`super::documents`] derives them from the levels) brought up to date in one statement,
/// for items whose levels changed and nothing else. A document already right is not written,
/// and the fields it writes are in no index, so the row can be updated in place (HOT): the
/// trigram index is not touched. Returns how many documents changed.
///
/// Every look-up goes by id from the list (`OFFSET 0` keeps each one a lookup by primary key):
/// on tables without statistics the planner takes a tenant for a handful of rows and would
/// otherwise scan all its documents or levels for every round. The update finds its rows by
/// `ctid`, read in the same statement; only the indexer, holding its cursor row, writes them.
pub async fn refresh_stock(
    txn: &impl ConnectionTrait,
    tenant_id: &str,
    item_ids: &[String],
) -> Result<u64, DbErr> {
    if item_ids.is_empty() {
        return Ok(0);
    }
    let ids = serde_json::to_string(item_ids).map_err(|e| DbErr::Custom(e.to_string()))?;
    let done = txn
        .execute_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "WITH t AS (SELECT d.row_id, a.available, a.codes \
               FROM json_array_elements_text($2::json) AS k(id) \
               CROSS JOIN LATERAL (SELECT ctid AS row_id, available, in_stock, location_codes \
                 FROM search_documents WHERE tenant_id = $1 AND doc_id = k.id OFFSET 0) d \
               CROSS JOIN LATERAL (SELECT CAST(GREATEST(LEAST(COALESCE(SUM(l.available), 0), \
                   9223372036854775807), -9223372036854775808) AS BIGINT) AS available, \
                   COALESCE('|' || string_agg(c.code, '|' ORDER BY c.code) \
                     FILTER (WHERE l.available > 0) || '|', '|') AS codes \
                 FROM stock_levels l \
                 CROSS JOIN LATERAL (SELECT code FROM locations \
                   WHERE tenant_id = $1 AND id = l.location_id OFFSET 0) c \
                 WHERE l.tenant_id = $1 AND l.item_id = k.id) a \
               WHERE (d.available, d.in_stock, d.location_codes) \
                 IS DISTINCT FROM (a.available, a.available > 0, a.codes)) \
             UPDATE search_documents s SET available = t.available, \
               in_stock = t.available > 0, location_codes = t.codes \
             FROM t WHERE s.ctid = t.row_id",
            [tenant_id.into(), ids.into()],
        ))
        .await?;
    Ok(done.rows_affected())
}

/// Writes documents (insert or replace) and deletes others, in the caller's transaction.
pub async fn apply(
    txn: &impl ConnectionTrait,
    tenant_id: &str,
    upserts: &[SearchDocument],
    deletes: &[String],
) -> Result<(), DbErr> {
    let backend = txn.get_database_backend();
    for chunk in upserts.chunks(200) {
        let mut sql = format!("INSERT INTO search_documents ({COLUMNS}, terms) VALUES ");
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 14);
        for (i, doc) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            let base = i * 14;
            let marks: Vec<String> = (1..=14).map(|n| format!("${}", base + n)).collect();
            sql.push('(');
            sql.push_str(&marks.join(", "));
            sql.push(')');
            values.extend([
                doc.id.clone().into(),
                doc.tenant_id.clone().into(),
                doc.doc_type.clone().into(),
                doc.title.clone().into(),
                doc.code.clone().into(),
                doc.code_key.clone().into(),
                doc.barcode.clone().into(),
                doc.body.clone().into(),
                doc.status.clone().into(),
                codes_column(&doc.location_codes).into(),
                doc.in_stock.into(),
                doc.available.into(),
                doc.updated_at.into(),
                terms_of(doc).into(),
            ]);
        }
        sql.push_str(
            " ON CONFLICT (tenant_id, doc_id) DO UPDATE SET doc_type = excluded.doc_type, \
             title = excluded.title, code = excluded.code, code_key = excluded.code_key, \
             barcode = excluded.barcode, body = excluded.body, status = excluded.status, \
             location_codes = excluded.location_codes, in_stock = excluded.in_stock, \
             available = excluded.available, updated_at = excluded.updated_at, terms = excluded.terms",
        );
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            dialect(backend, &sql),
            values,
        ))
        .await?;
    }
    for chunk in deletes.chunks(500) {
        let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
        let mut values: Vec<Value> = vec![tenant_id.into()];
        values.extend(chunk.iter().map(|id| id.clone().into()));
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            dialect(
                backend,
                &format!(
                    "DELETE FROM search_documents WHERE tenant_id = $1 AND doc_id IN ({})",
                    marks.join(", ")
                ),
            ),
            values,
        ))
        .await?;
    }
    Ok(())
}

/// Deletes every document of a tenant (a reindex, in the transaction that writes them again).
pub async fn clear(txn: &impl ConnectionTrait, tenant_id: &str) -> Result<(), DbErr> {
    let backend = txn.get_database_backend();
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        dialect(backend, "DELETE FROM search_documents WHERE tenant_id = $1"),
        [tenant_id.into()],
    ))
    .await?;
    Ok(())
}

/// `|A|B|`: a filter on one code is a `LIKE '%|A|%'`.
fn codes_column(codes: &[String]) -> String {
    let mut out = String::from("|");
    for code in codes {
        out.push_str(code);
        out.push('|');
    }
    out
}

/// The filter clauses every query of a search shares, with their values from `$2` on
/// (`$1` is the tenant).
struct Filters {
    sql: String,
    values: Vec<Value>,
}

impl Filters {
    fn of(req: &SearchRequest) -> Self {
        let mut sql = String::new();
        let mut values: Vec<Value> = vec![];
        let mark = |values: &mut Vec<Value>, v: Value| {
            values.push(v);
            format!("${}", values.len() + 1)
        };
        if !req.types.is_empty() {
            let marks: Vec<String> = req
                .type_names()
                .into_iter()
                .map(|t| mark(&mut values, t.into()))
                .collect();
            sql.push_str(&format!(" AND d.doc_type IN ({})", marks.join(", ")));
        }
        if !req.statuses.is_empty() {
            let marks: Vec<String> = req
                .statuses
                .iter()
                .map(|s| mark(&mut values, s.clone().into()))
                .collect();
            sql.push_str(&format!(" AND d.status IN ({})", marks.join(", ")));
        }
        if let Some(code) = &req.location_code {
            // A code is matched literally: LIKE's wildcards in it are escaped.
            let escaped = code
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            let m = mark(&mut values, format!("%|{escaped}|%").into());
            sql.push_str(&format!(" AND d.location_codes LIKE {m} ESCAPE '\\'"));
        }
        if let Some(in_stock) = req.in_stock {
            let m = mark(&mut values, in_stock.into());
            sql.push_str(&format!(" AND d.in_stock = {m}"));
        }
        Self { sql, values }
    }

    fn values_with(&self, tenant_id: &str) -> Vec<Value> {
        let mut v: Vec<Value> = vec![tenant_id.into()];
        v.extend(self.values.iter().cloned());
        v
    }

    /// The next free placeholder number.
    fn next(&self) -> usize {
        self.values.len() + 2
    }
}

fn select_columns() -> String {
    COLUMNS
        .split(", ")
        .map(|c| format!("d.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn document(row: &QueryResult) -> Result<SearchDocument, DbErr> {
    let codes: String = row.try_get("", "location_codes")?;
    Ok(SearchDocument {
        id: row.try_get("", "doc_id")?,
        tenant_id: row.try_get("", "tenant_id")?,
        doc_type: row.try_get("", "doc_type")?,
        title: row.try_get("", "title")?,
        code: row.try_get("", "code")?,
        code_key: row.try_get("", "code_key")?,
        barcode: row.try_get("", "barcode")?,
        body: row.try_get("", "body")?,
        status: row.try_get("", "status")?,
        location_codes: codes
            .split('|')
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect(),
        in_stock: row.try_get("", "in_stock")?,
        available: row.try_get("", "available")?,
        updated_at: row.try_get("", "updated_at")?,
    })
}

pub async fn search(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    req: &SearchRequest,
) -> Result<SearchResults, DbErr> {
    let backend = db.get_database_backend();
    let filters = Filters::of(req);
    let columns = select_columns();

    // Exact codes and barcodes first: an index look-up, before any fuzzy matching.
    let mut exact: Vec<SearchDocument> = Vec::new();
    if req.code_like() {
        let n = filters.next();
        let sql = format!(
            "SELECT {columns} FROM search_documents d WHERE d.tenant_id = $1 \
             AND (d.code_key = ${n} OR d.barcode = ${}){} ORDER BY d.updated_at DESC LIMIT 20",
            n + 1,
            filters.sql
        );
        let mut values = filters.values_with(tenant_id);
        values.push(req.text.to_lowercase().into());
        values.push(req.text.clone().into());
        for row in db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                dialect(backend, &sql),
                values,
            ))
            .await?
        {
            exact.push(document(&row)?);
        }
    }

    // Without words (an empty query, or only punctuation) every document of the filter
    // matches, most recent first, as Meilisearch's placeholder search does.
    let mut ranked: Vec<(Hit, Rank)> = Vec::new();
    if req.words.is_empty() {
        let sql = format!(
            "SELECT {columns} FROM search_documents d WHERE d.tenant_id = $1{} \
             ORDER BY d.updated_at DESC, d.doc_id LIMIT {MAX_RESULTS}",
            filters.sql
        );
        for row in db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                dialect(backend, &sql),
                filters.values_with(tenant_id),
            ))
            .await?
        {
            let doc = document(&row)?;
            let key = (0, 0, 0, Reverse(doc.updated_at));
            ranked.push((
                Hit {
                    document: doc,
                    exact: false,
                    highlights: Vec::new(),
                },
                key,
            ));
        }
    } else {
        // Zero-typo matches first: they rank before any match with a typo, so when they fill
        // the page the loose look-up (costly for common trigrams) is not needed. The total then
        // counts those matches only.
        // Only words that may carry a typo widen the loose look-up; without one it would
        // repeat the precise one.
        let needed = req.offset + req.limit + exact.len();
        let typos_possible = req.words.iter().any(|w| text::typo_budget(w) > 0);
        for loose in [false, true] {
            if loose && !typos_possible {
                break;
            }
            ranked.clear();
            for row in candidates(db, backend, tenant_id, req, &filters, &columns, loose).await? {
                let doc = document(&row)?;
                if let Some(hit) = check(doc, req) {
                    ranked.push(hit);
                }
            }
            if ranked.len() >= needed {
                break;
            }
        }
    }
    let exact_ids: std::collections::HashSet<String> = exact.iter().map(|d| d.id.clone()).collect();
    ranked.retain(|(hit, _)| !exact_ids.contains(&hit.document.id));
    ranked.sort_by(|(a, ka), (b, kb)| ka.cmp(kb).then_with(|| a.document.id.cmp(&b.document.id)));

    let mut all: Vec<Hit> = exact
        .into_iter()
        .map(|doc| {
            let highlights = super::highlights(&doc, req);
            Hit {
                document: doc,
                exact: true,
                highlights,
            }
        })
        .collect();
    all.extend(ranked.into_iter().map(|(hit, _)| hit));
    all.truncate(MAX_RESULTS);

    let mut facets: Vec<(String, Vec<(String, usize)>)> = Vec::new();
    for (name, value) in [
        (
            "type",
            (|d: &SearchDocument| d.doc_type.clone()) as fn(&SearchDocument) -> String,
        ),
        ("status", |d: &SearchDocument| d.status.clone()),
    ] {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for hit in &all {
            *counts.entry(value(&hit.document)).or_default() += 1;
        }
        let mut counts: Vec<(String, usize)> = counts.into_iter().collect();
        counts.sort();
        facets.push((name.to_owned(), counts));
    }
    let total = all.len();
    let hits = all.into_iter().skip(req.offset).take(req.limit).collect();
    Ok(SearchResults {
        hits,
        total,
        facets,
    })
}

/// Candidate documents for the query words. Precise: every word as a whole word (the last
/// one as a word start), a synonym as a whole word: the zero-typo matches, found through the
/// index's positions. Loose: a word that may carry typos matches any document sharing one of
/// its trigrams. Best first by the index's own measure (FTS5's bm25; on Postgres, word
/// similarity when loose, recency when precise).
async fn candidates(
    db: &impl ConnectionTrait,
    backend: DatabaseBackend,
    tenant_id: &str,
    req: &SearchRequest,
    filters: &Filters,
    columns: &str,
    loose: bool,
) -> Result<Vec<QueryResult>, DbErr> {
    // Each word's alternatives (any may match), ANDed over the words. Fewer than three
    // characters cannot be looked up in a trigram index: such words are checked afterwards.
    let mut groups: Vec<Vec<String>> = Vec::new();
    let mut similar: Vec<&String> = Vec::new();
    for (i, word) in req.words.iter().enumerate() {
        let last = i + 1 == req.words.len();
        let mut any = vec![if last {
            format!(" {word}")
        } else {
            format!(" {word} ")
        }];
        for synonym in req.synonyms.get(i).into_iter().flatten() {
            any.push(format!(" {synonym} "));
        }
        if loose && text::typo_budget(word) > 0 {
            any.extend(text::trigrams(word));
            similar.push(word);
        }
        any.retain(|a| a.chars().count() >= 3);
        any.sort();
        any.dedup();
        if !any.is_empty() {
            groups.push(any);
        }
    }
    let mut values = filters.values_with(tenant_id);
    let sql = if groups.is_empty() {
        // Only one-letter words: the first of them as a word start, in recent documents.
        let first = req.words.first().cloned().unwrap_or_default();
        values.push(format!("% {}%", first.replace(['%', '_', '\\'], "")).into());
        format!(
            "SELECT {columns} FROM search_documents d WHERE d.tenant_id = $1{} AND d.terms LIKE ${} \
             ORDER BY d.updated_at DESC LIMIT {CANDIDATES}",
            filters.sql,
            values.len()
        )
    } else if backend == DatabaseBackend::Postgres {
        // LIKE '%…%' on the terms, which the pg_trgm GIN index answers (the terms hold only
        // letters, digits and spaces, so nothing in a pattern is a wildcard).
        let mut clauses = Vec::new();
        for group in &groups {
            let mut any = Vec::new();
            for alternative in group {
                values.push(format!("%{alternative}%").into());
                any.push(format!("d.terms LIKE ${}", values.len()));
            }
            clauses.push(format!("({})", any.join(" OR ")));
        }
        let mut rank = Vec::new();
        for word in similar {
            values.push(word.clone().into());
            rank.push(format!("word_similarity(${}, d.terms)", values.len()));
        }
        let order = if rank.is_empty() {
            "d.updated_at DESC".to_owned()
        } else {
            format!("{} DESC, d.updated_at DESC", rank.join(" + "))
        };
        format!(
            "SELECT {columns} FROM search_documents d WHERE d.tenant_id = $1{} AND {} \
             ORDER BY {order} LIMIT {CANDIDATES}",
            filters.sql,
            clauses.join(" AND "),
        )
    } else {
        // FTS5 drives (CROSS JOIN keeps it the outer loop: driven from the tenant's rows, the
        // planner would run the MATCH once per document). Quoted strings (words are letters and digits only, so nothing in them can be
        // read as query syntax); a quoted string of several trigrams is matched as a phrase.
        let expr = groups
            .iter()
            .map(|g| {
                let any: Vec<String> = g.iter().map(|a| format!("\"{a}\"")).collect();
                format!("({})", any.join(" OR "))
            })
            .collect::<Vec<_>>()
            .join(" AND ");
        values.push(expr.into());
        format!(
            "SELECT {columns} FROM search_fts CROSS JOIN search_documents d ON d.key = search_fts.rowid \
             WHERE search_fts MATCH ${} AND d.tenant_id = $1{} ORDER BY search_fts.rank LIMIT {CANDIDATES}",
            values.len(),
            filters.sql
        )
    };
    db.query_all_raw(Statement::from_sql_and_values(
        backend,
        dialect(backend, &sql),
        values,
    ))
    .await
}

/// Whether a document matches every query word, and its rank: total typos, then the fields
/// the words matched in, then prefix matches, then recency (Meilisearch's typo, attribute,
/// exactness and `updated_at:desc` rules).
fn check(doc: SearchDocument, req: &SearchRequest) -> Option<(Hit, Rank)> {
    let fields = Fields::new(&doc.code, doc.barcode.as_deref(), &doc.title, &doc.body);
    let (mut typos, mut attribute, mut prefixes) = (0, 0, 0);
    for (i, word) in req.words.iter().enumerate() {
        let synonyms = req.synonyms.get(i).map(Vec::as_slice).unwrap_or_default();
        let found = text::match_word(word, &fields, i + 1 == req.words.len(), synonyms)?;
        typos += found.typos;
        attribute += found.field;
        prefixes += usize::from(found.prefix);
    }
    let key = (typos, attribute, prefixes, Reverse(doc.updated_at));
    let highlights = super::highlights(&doc, req);
    Some((
        Hit {
            document: doc,
            exact: false,
            highlights,
        },
        key,
    ))
}
