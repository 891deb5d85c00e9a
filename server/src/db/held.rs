//! Connections kept for reads of one statement (Postgres).
//!
//! sqlx answers every connection's return to its pool with a ping (a `Sync` and its
//! `ReadyForQuery`): a second round trip for a read that is one statement, and on a machine
//! where the server and Postgres share the cores, a second wake-up of each. The top-level
//! catalog and stock reads (an item, a location, a stock level, and their pages; the reads a
//! point of sale or a dashboard repeats) therefore run on a small pool of their own whose connections this process keeps checked out: after a
//! statement that completed, its connection goes back on the list here, unpinged; sqlx checks
//! anything still pending (a statement abandoned halfway) at the start of the next one. A
//! connection whose statement failed or was abandoned goes back to sqlx instead, which pings it
//! and closes it if it is broken.
//!
//! A statement that finds its connection dead (a restart, a failover, a terminated backend)
//! sheds every kept connection and runs once more on a fresh one: it only reads, so running it
//! again is safe.
//!
//! On SQLite, and with `TWH_DB_READ_POOL_SIZE=0`, reads run on the shared pool.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sea_orm::sqlx::pool::PoolConnection;
use sea_orm::sqlx::postgres::{PgPool, PgPoolOptions};
use sea_orm::sqlx::{self, Postgres};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, ExecResult, QueryResult, RuntimeErr,
    Statement,
};
use sea_query_sqlx::SqlxValues;
use tokio::sync::Semaphore;

/// The shared pool, or beside it the kept connections for one-statement reads.
pub struct Reads {
    db: DatabaseConnection,
    kept: Option<Kept>,
}

struct Kept {
    pool: PgPool,
    /// One permit per connection of `pool`: a read waits here, never inside sqlx, whose pool
    /// counts every kept connection as in use.
    permits: Semaphore,
    idle: Mutex<Vec<PoolConnection<Postgres>>>,
    statements: Arc<AtomicU64>,
}

/// `application_name` of the kept connections, so operators (and tests) can tell them apart.
pub const APPLICATION_NAME: &str = "twh-reads";

impl Reads {
    /// Reads on `db` itself: SQLite, or a size of 0.
    pub fn shared(db: DatabaseConnection) -> Self {
        Self { db, kept: None }
    }

    /// `size` connections of their own beside `db`'s pool, opened when first needed, with
    /// its settings; statements are counted in `statements` with the shared pool's.
    pub fn new(db: DatabaseConnection, size: u32, statements: Arc<AtomicU64>) -> Self {
        if size == 0 || db.get_database_backend() != DbBackend::Postgres {
            return Self::shared(db);
        }
        let shared = db.get_postgres_connection_pool();
        let options = shared
            .connect_options()
            .as_ref()
            .clone()
            .application_name(APPLICATION_NAME);
        let port = options.get_socket().is_none().then(|| options.get_port());
        let pool = PgPoolOptions::new()
            .max_connections(size)
            .acquire_timeout(shared.options().get_acquire_timeout())
            // Kept connections never sit idle in sqlx's pool; one handed back after a failure
            // is pinged on its way in.
            .test_before_acquire(false)
            .after_connect(move |_, _| {
                Box::pin(async move {
                    if let Some(port) = port {
                        super::nodelay::set_on_sockets_to(port);
                    }
                    Ok(())
                })
            })
            .connect_lazy_with(options);
        Self {
            db,
            kept: Some(Kept {
                pool,
                permits: Semaphore::new(size as usize),
                idle: Mutex::new(Vec::new()),
                statements,
            }),
        }
    }

    /// Kept connections idle now, and the idle ones sqlx holds in their pool (tests read it:
    /// a kept connection goes back to sqlx only after a failure).
    pub fn idle(&self) -> Option<(usize, usize)> {
        self.kept.as_ref().map(|kept| {
            (
                kept.idle.lock().expect("kept connections").len(),
                kept.pool.num_idle(),
            )
        })
    }
}

/// A kept connection on loan; back on the list only if its statement completed.
struct Loan<'a> {
    kept: &'a Kept,
    conn: Option<PoolConnection<Postgres>>,
    completed: bool,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl Drop for Loan<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && self.completed
        {
            self.kept.idle.lock().expect("kept connections").push(conn);
        }
        // Otherwise dropped: sqlx pings it on its way back and closes it if it is broken.
    }
}

impl Kept {
    async fn loan(&self) -> Result<Loan<'_>, DbErr> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::ConnectionClosed))?;
        let idle = self.idle.lock().expect("kept connections").pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.pool.acquire().await.map_err(acquire_error)?,
        };
        Ok(Loan {
            kept: self,
            conn: Some(conn),
            completed: false,
            _permit: permit,
        })
    }

    /// Every idle kept connection back to sqlx (which pings each and closes the dead).
    fn shed(&self) {
        let idle = std::mem::take(&mut *self.idle.lock().expect("kept connections"));
        drop(idle);
    }

    async fn fetch(&self, stmt: &Statement) -> Result<Vec<QueryResult>, DbErr> {
        match self.fetch_once(stmt).await {
            Err(err) if super::outage(&err) == Some(super::Outage::ConnectionLost) => {
                tracing::info!(error = %err, "a kept read connection was lost; reading again on a fresh one");
                self.shed();
                self.fetch_once(stmt).await
            }
            done => done,
        }
    }

    async fn fetch_once(&self, stmt: &Statement) -> Result<Vec<QueryResult>, DbErr> {
        let mut loan = self.loan().await?;
        let conn = loan.conn.as_mut().expect("a loan holds its connection");
        self.statements.fetch_add(1, Ordering::Relaxed);
        let values = stmt.values.clone().unwrap_or(sea_orm::Values(Vec::new()));
        let rows = sqlx::query_with(sqlx::AssertSqlSafe(stmt.sql.as_str()), SqlxValues(values))
            .fetch_all(&mut **conn)
            .await
            .map_err(|err| DbErr::Query(RuntimeErr::SqlxError(Arc::new(err))))?;
        loan.completed = true;
        Ok(rows.into_iter().map(QueryResult::from).collect())
    }
}

fn acquire_error(err: sqlx::Error) -> DbErr {
    match err {
        sqlx::Error::PoolTimedOut => DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout),
        sqlx::Error::PoolClosed => {
            DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::ConnectionClosed)
        }
        other => DbErr::Conn(RuntimeErr::SqlxError(Arc::new(other))),
    }
}

/// Reads only: a write through here is a bug, refused before it reaches the database.
#[async_trait::async_trait]
impl ConnectionTrait for Reads {
    fn get_database_backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    async fn execute_raw(&self, _: Statement) -> Result<ExecResult, DbErr> {
        Err(DbErr::Custom("the read connections take no writes".into()))
    }

    async fn execute_unprepared(&self, _: &str) -> Result<ExecResult, DbErr> {
        Err(DbErr::Custom("the read connections take no writes".into()))
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        match &self.kept {
            Some(kept) => Ok(kept.fetch(&stmt).await?.into_iter().next()),
            None => self.db.query_one_raw(stmt).await,
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match &self.kept {
            Some(kept) => kept.fetch(&stmt).await,
            None => self.db.query_all_raw(stmt).await,
        }
    }
}
