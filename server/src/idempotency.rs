//! Idempotency keys (Stripe and the IETF Idempotency-Key draft): the key is claimed and the
//! result stored in the same transaction as the change, so a replay returns exactly what the
//! first call returned and a change is applied at most once.

use std::future::Future;

use chrono::{Duration, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, RuntimeErr, Statement};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::app::App;
use crate::auth::Principal;
use crate::db::group::Joined;
use crate::error::{DomainError, ErrorCode, UserError};

pub const MAX_KEY_LEN: usize = 255;

/// What is stored under a key: the success value or the business errors of the first call.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum Stored<T> {
    Ok(T),
    UserErrors(Vec<UserError>),
}

tokio::task_local! {
    /// Around a keyed write's work: the key whose answer the work may store itself, in a
    /// statement it sends anyway (see [`store_with`]), and whether it did.
    static FOLDED: Folded;
}

struct Folded {
    tenant_id: String,
    key: String,
    stored: std::cell::Cell<bool>,
}

/// Inside a keyed write: the UPDATE that stores `value` as the key's answer, for a caller whose
/// result is exactly `value` to send with its own last statement (saving the round trip the
/// store would take after it). `None` outside a keyed write.
pub fn store_with(value: &impl Serialize) -> Option<sea_orm::sea_query::UpdateStatement> {
    FOLDED
        .try_with(|folded| {
            let response = serde_json::to_string(&Stored::Ok(value)).ok()?;
            folded.stored.set(true);
            Some(store_statement(&folded.tenant_id, &folded.key, response))
        })
        .ok()
        .flatten()
}

/// The outcome of an idempotent operation.
pub struct Outcome<T> {
    pub result: Result<T, DomainError>,
    /// True when the result is the stored answer to an earlier call with the same key.
    pub replayed: bool,
}

/// A fingerprint of the operation and its input, to refuse a key reused for another request.
pub fn fingerprint(operation: &str, input: &impl Serialize) -> String {
    let mut hasher = Sha256::new();
    hasher.update(operation.as_bytes());
    hasher.update([0]);
    hasher.update(serde_json::to_vec(input).unwrap_or_default());
    hex::encode(hasher.finalize())
}

pub fn validate_key(key: Option<&str>) -> Result<(), UserError> {
    match key {
        Some(k) if k.is_empty() || k.len() > MAX_KEY_LEN || k.chars().any(char::is_control) => {
            Err(UserError::new(
                ErrorCode::InvalidInput,
                &["idempotencyKey"],
                format!("an idempotency key is 1 to {MAX_KEY_LEN} printable characters"),
            ))
        }
        _ => Ok(()),
    }
}

enum Claim {
    Fresh,
    Replay(String),
    Mismatch,
}

/// The Postgres SQLSTATE of a database error, if there is one.
pub fn sqlstate(err: &DbErr) -> Option<String> {
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => e
            .as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.into_owned()),
        _ => None,
    }
}

async fn claim(
    app: &App,
    txn: &DatabaseTransaction,
    tenant_id: &str,
    key: &str,
    operation: &str,
    hash: &str,
) -> Result<Claim, DbErr> {
    let now = Utc::now();
    let expires_at = expiry(app.config.idempotency_ttl_hours, now);
    // A second caller with the same key blocks on the first one's uncommitted row; bound that
    // wait so a slow first call yields IDEMPOTENCY_CONCURRENT_REQUEST instead of a hung client.
    // On Postgres the bound is set by the same statement (set_config in its FROM runs before
    // the row is inserted), saving a round trip; `begin_work` lifts it again.
    let claim = || {
        if app.is_postgres() {
            return Statement::from_sql_and_values(
                DbBackend::Postgres,
                "INSERT INTO idempotency_keys \
                 (tenant_id, key, operation, request_hash, response, created_at, expires_at) \
                 SELECT $1, $2, $3, $4, '', $5, $6 \
                 FROM (SELECT set_config('lock_timeout', $7, true)) AS bounded_wait \
                 ON CONFLICT (tenant_id, key) DO NOTHING",
                [
                    tenant_id.into(),
                    key.into(),
                    operation.into(),
                    hash.into(),
                    now.into(),
                    expires_at.into(),
                    app.config.idempotency_wait_ms.to_string().into(),
                ],
            );
        }
        let insert = Query::insert()
            .into_table("idempotency_keys")
            .columns([
                "tenant_id",
                "key",
                "operation",
                "request_hash",
                "response",
                "created_at",
                "expires_at",
            ])
            .values_panic([
                tenant_id.into(),
                key.into(),
                operation.into(),
                hash.into(),
                "".into(),
                now.into(),
                expires_at.into(),
            ])
            .on_conflict(
                OnConflict::columns(["tenant_id", "key"])
                    .do_nothing()
                    .to_owned(),
            )
            .to_owned();
        txn.get_database_backend().build(&insert)
    };
    let inserted = txn.execute_raw(claim()).await?.rows_affected();
    if inserted == 1 {
        return Ok(Claim::Fresh);
    }
    let select = Query::select()
        .columns(["operation", "request_hash", "response", "expires_at"])
        .from("idempotency_keys")
        .and_where(Expr::col("tenant_id").eq(tenant_id))
        .and_where(Expr::col("key").eq(key))
        .to_owned();
    let Some(row) = txn.query_one(&select).await? else {
        return Ok(Claim::Fresh);
    };
    let stored_op: String = row.try_get("", "operation")?;
    let stored_hash: String = row.try_get("", "request_hash")?;
    let expires_at: chrono::DateTime<Utc> = row.try_get("", "expires_at")?;
    if expires_at < now {
        // Expired but not yet swept: the key is free again.
        let delete = Query::delete()
            .from_table("idempotency_keys")
            .and_where(Expr::col("tenant_id").eq(tenant_id))
            .and_where(Expr::col("key").eq(key))
            .to_owned();
        txn.execute(&delete).await?;
        txn.execute_raw(claim()).await?;
        return Ok(Claim::Fresh);
    }
    if stored_op != operation || stored_hash != hash {
        return Ok(Claim::Mismatch);
    }
    Ok(Claim::Replay(row.try_get("", "response")?))
}

/// A key claimed with its answer already known (a write run together with others, see
/// `ledger::write::together`), as a row of a JSON recordset (see [`insert_answered_from_json`]).
#[derive(Serialize)]
pub struct Answered<'a> {
    pub key: &'a str,
    pub operation: &'a str,
    pub request_hash: &'a str,
    /// The answer, as [`stored_answer`] makes it.
    pub response: String,
}

/// A success as a key stores it.
pub fn stored_answer(value: &impl Serialize) -> Result<String, DbErr> {
    serde_json::to_string(&Stored::Ok(value))
        .map_err(|e| DbErr::Custom(format!("storing response: {e}")))
}

/// When a key claimed now expires.
pub fn expiry(app_ttl_hours: i64, now: chrono::DateTime<Utc>) -> chrono::DateTime<Utc> {
    now + Duration::hours(app_ttl_hours)
}

/// An INSERT claiming the keys of the JSON recordset parameter `rows` ([`Answered`]s) with
/// their answers, for the tenant, time and expiry in the parameters named (Postgres). `ON
/// CONFLICT DO NOTHING`: a key that exists is not inserted, and the caller, counting fewer rows
/// than keys (`RETURNING 1`), must roll its work back and run each request on its own.
pub fn insert_answered_from_json(rows: &str, tenant: &str, now: &str, expires: &str) -> String {
    format!(
        "INSERT INTO idempotency_keys \
           (tenant_id, key, operation, request_hash, response, created_at, expires_at) \
         SELECT {tenant}, r.key, r.operation, r.request_hash, r.response, {now}, {expires} \
         FROM json_to_recordset({rows}::json) AS r(key text, operation text, \
           request_hash text, response text) \
         ON CONFLICT (tenant_id, key) DO NOTHING RETURNING 1"
    )
}

fn store_statement(
    tenant_id: &str,
    key: &str,
    response: String,
) -> sea_orm::sea_query::UpdateStatement {
    Query::update()
        .table("idempotency_keys")
        .value("response", response)
        .and_where(Expr::col("tenant_id").eq(tenant_id))
        .and_where(Expr::col("key").eq(key))
        .to_owned()
}

async fn store(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    key: &str,
    response: String,
) -> Result<(), DbErr> {
    txn.execute(&store_statement(tenant_id, key, response))
        .await?;
    Ok(())
}

/// Runs `work` in one write transaction, guarded by the idempotency key when one is given.
///
/// Business failures (`DomainError::User`) roll back the work but are stored under the key, so a
/// retry gets the same answer; internal failures roll back everything, key included.
pub async fn run<T, F, Fut>(
    app: &App,
    principal: &Principal,
    operation: &str,
    key: Option<&str>,
    fingerprint: String,
    work: F,
) -> Outcome<T>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce(DatabaseTransaction) -> Fut,
    Fut: Future<Output = (DatabaseTransaction, Result<T, DomainError>)>,
{
    run_together(app, principal, operation, key, fingerprint, None, work).await
}

/// A single adjustment that group commit may write together with its tenant's others, and how
/// its change becomes the caller's answer.
pub struct Together<T> {
    pub adjustment: crate::ledger::write::together::Adjustment,
    pub answer: fn(crate::ledger::write::StockChange) -> T,
}

/// [`run`], for a write that group commit may run together with others (`together`): then
/// its key is claimed with its answer in the run's last statement, or, if the run cannot take
/// it, it runs as [`run`] runs it.
pub async fn run_together<T, F, Fut>(
    app: &App,
    principal: &Principal,
    operation: &str,
    key: Option<&str>,
    fingerprint: String,
    together: Option<Together<T>>,
    work: F,
) -> Outcome<T>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce(DatabaseTransaction) -> Fut,
    Fut: Future<Output = (DatabaseTransaction, Result<T, DomainError>)>,
{
    // With group commit the write runs in a savepoint of its tenant's group, or with a run of
    // others, and is answered once the group has committed; else in a transaction of its own.
    let outcome = async {
        let seat = match (&app.group, together) {
            (Some(group), Some(Together { adjustment, answer })) => {
                match group.adjust(adjustment).await? {
                    Joined::Done(change, commit) => {
                        commit.wait().await?;
                        return Ok(Outcome {
                            result: Ok(answer(change)),
                            replayed: false,
                        });
                    }
                    Joined::Seat(seat) => Some(seat),
                }
            }
            (Some(group), None) if group.seats_every_write() => {
                Some(group.join(&principal.tenant_id).await?)
            }
            _ => None,
        };
        match seat {
            Some(seat) => {
                let outcome =
                    run_in(app, seat.txn, principal, operation, key, fingerprint, work).await?;
                // Even a refusal or a replay waits: a replay may answer with what an earlier
                // write of this same group stored.
                seat.ticket.leave().await?;
                Ok(outcome)
            }
            None => {
                let write = app.begin_write().await?;
                run_in(app, write.txn, principal, operation, key, fingerprint, work).await
            }
        }
    };
    match outcome.await {
        Ok(outcome) => outcome,
        Err(err) => Outcome {
            result: Err(DomainError::Internal(err.into())),
            replayed: false,
        },
    }
}

async fn run_in<T, F, Fut>(
    app: &App,
    txn: DatabaseTransaction,
    principal: &Principal,
    operation: &str,
    key: Option<&str>,
    fingerprint: String,
    work: F,
) -> Result<Outcome<T>, DbErr>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce(DatabaseTransaction) -> Fut,
    Fut: Future<Output = (DatabaseTransaction, Result<T, DomainError>)>,
{
    let Some(key) = key else {
        let (txn, result) = work(txn).await;
        match &result {
            Ok(_) => txn.commit().await?,
            Err(_) => txn.rollback().await?,
        }
        return Ok(Outcome {
            result,
            replayed: false,
        });
    };

    let tenant_id = principal.tenant_id.as_str();
    let claimed = claim(app, &txn, tenant_id, key, operation, &fingerprint).await;
    let claimed = match claimed {
        Ok(c) => c,
        Err(err) if sqlstate(&err).as_deref() == Some("55P03") => {
            txn.rollback().await?;
            return Ok(Outcome {
                result: Err(DomainError::user(UserError::new(
                    ErrorCode::IdempotencyConcurrentRequest,
                    &["idempotencyKey"],
                    "a request with this idempotency key is still in progress - Hint: retry after it completes",
                ))),
                replayed: false,
            });
        }
        Err(err) => return Err(err),
    };
    match claimed {
        Claim::Mismatch => {
            txn.rollback().await?;
            Ok(Outcome {
                result: Err(DomainError::user(UserError::new(
                    ErrorCode::IdempotencyKeyParameterMismatch,
                    &["idempotencyKey"],
                    "this idempotency key was already used with a different request - Hint: use a new key for a new request",
                ))),
                replayed: false,
            })
        }
        Claim::Replay(stored) => {
            txn.rollback().await?;
            let stored: Stored<T> = serde_json::from_str(&stored)
                .map_err(|e| DbErr::Custom(format!("stored idempotent response: {e}")))?;
            Ok(Outcome {
                result: match stored {
                    Stored::Ok(value) => Ok(value),
                    Stored::UserErrors(errors) => Err(DomainError::User(errors)),
                },
                replayed: true,
            })
        }
        Claim::Fresh => {
            begin_work(app, &txn).await?;
            let folded = Folded {
                tenant_id: tenant_id.to_owned(),
                key: key.to_owned(),
                stored: std::cell::Cell::new(false),
            };
            let ((txn, result), stored_by_work) = FOLDED
                .scope(folded, async {
                    let outcome = work(txn).await;
                    (outcome, FOLDED.with(|f| f.stored.get()))
                })
                .await;
            let stored = match &result {
                // The work stored its answer itself, with its last statement.
                Ok(_) if stored_by_work => {
                    txn.commit().await?;
                    return Ok(Outcome {
                        result,
                        replayed: false,
                    });
                }
                // The savepoint needs no release: the commit below ends it.
                Ok(value) => serde_json::to_string(&Stored::Ok(value)),
                Err(DomainError::User(errors)) => {
                    txn.execute_unprepared(&format!("ROLLBACK TO SAVEPOINT {SAVEPOINT}"))
                        .await?;
                    serde_json::to_string(&Stored::<T>::UserErrors(errors.clone()))
                }
                Err(DomainError::Internal(_)) => {
                    txn.rollback().await?;
                    return Ok(Outcome {
                        result,
                        replayed: false,
                    });
                }
            };
            let stored = stored.map_err(|e| DbErr::Custom(format!("storing response: {e}")))?;
            store(&txn, tenant_id, key, stored).await?;
            txn.commit().await?;
            Ok(Outcome {
                result,
                replayed: false,
            })
        }
    }
}

/// The savepoint around a keyed operation's work: a business failure rolls back to it and keeps
/// the claimed key, so the failure itself is stored and replayed.
const SAVEPOINT: &str = "twh_keyed_work";

/// Lifts the claim's bound on lock waits (the work may queue on a hot stock level for longer)
/// and sets the savepoint, in one round trip on Postgres.
async fn begin_work(app: &App, txn: &DatabaseTransaction) -> Result<(), DbErr> {
    let sql = if app.is_postgres() {
        format!("SET LOCAL lock_timeout = 0; SAVEPOINT {SAVEPOINT}")
    } else {
        format!("SAVEPOINT {SAVEPOINT}")
    };
    txn.execute_unprepared(&sql).await?;
    Ok(())
}

/// Deletes keys past their retention; returns how many went.
pub async fn sweep_expired(db: &impl ConnectionTrait) -> Result<u64, DbErr> {
    let delete = Query::delete()
        .from_table("idempotency_keys")
        .and_where(Expr::col("expires_at").lt(Utc::now()))
        .to_owned();
    Ok(db.execute(&delete).await?.rows_affected())
}
