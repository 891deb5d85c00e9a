//! The shared application state: every handle a handler or resolver needs, wrapped once.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr};
use tokio::sync::{Mutex, MutexGuard};

use crate::auth::KeyCache;
use crate::config::Config;

pub struct App {
    pub db: DatabaseConnection,
    /// The same pool for background work (relay, dispatcher, bus), outside the statement count
    /// that tests read to see what a request costs.
    pub background_db: DatabaseConnection,
    /// The top-level catalog and stock reads (items, locations, levels, movements): on Postgres, on connections
    /// this process keeps (see `db::held`).
    pub reads: crate::db::held::Reads,
    pub config: Config,
    pub key_cache: KeyCache,
    pub documents: crate::graphql::DocumentCache,
    /// Statements this pool has sent (see `db::count_statements`).
    pub statements: Arc<std::sync::atomic::AtomicU64>,
    /// Relayed events on their way to this process's subscribers.
    pub bus: Arc<crate::events::bus::Bus>,
    /// Metering, rate limits and quotas.
    pub limiter: crate::tenancy::limits::Limiter,
    /// Where artifacts (uploads, exports, reports) are kept.
    pub artifacts: crate::artifacts::Store,
    /// The search engine (built-in or Meilisearch).
    pub search: crate::search::Search,
    /// Console session keys (JWT).
    pub sessions: crate::auth::jwt::Sessions,
    /// Wakes the background relay and webhook dispatcher after a commit.
    pub wake: Wake,
    /// Names this process in leases (webhook endpoints, jobs).
    pub instance_id: String,
    /// Keys revoked and tenants suspended (here or on another replica): open WebSockets close.
    pub revoked: tokio::sync::broadcast::Sender<Revoked>,
    /// Open WebSocket connections per tenant (the per-tenant limit).
    pub ws_connections: std::sync::Mutex<std::collections::HashMap<String, usize>>,
    /// SQLite admits one writer at a time; queueing writers here (FIFO) instead of in SQLite's
    /// busy-retry loop keeps latency flat under contention. `None` on Postgres.
    sqlite_writer: Option<Arc<Mutex<()>>>,
    /// Group commit for the API's writes (`idempotency::run`), when turned on.
    pub group: Option<crate::db::group::GroupCommit>,
}

/// A write transaction, holding the SQLite writer slot when there is one.
pub struct WriteTxn<'a> {
    pub txn: DatabaseTransaction,
    _writer: Option<MutexGuard<'a, ()>>,
}

/// A credential that stopped being valid.
#[derive(Clone, Debug)]
pub enum Revoked {
    Key(String),
    Tenant(String),
}

#[derive(Default)]
pub struct Wake {
    pub relay: tokio::sync::Notify,
    pub dispatcher: tokio::sync::Notify,
    /// Wakes idle job workers after a job is queued.
    pub jobs: tokio::sync::Notify,
    /// Wakes the search indexer after the relay moved events into the log.
    pub search: tokio::sync::Notify,
}

impl App {
    pub fn new(mut db: DatabaseConnection, config: Config) -> anyhow::Result<Self> {
        let sqlite_writer = crate::db::is_sqlite(&db).then(|| Arc::new(Mutex::new(())));
        let background_db = db.clone();
        let statements = crate::db::count_statements(&mut db);
        let reads = crate::db::held::Reads::new(
            db.clone(),
            config.database.read_pool_size,
            statements.clone(),
        );
        let redis = match &config.redis_url {
            Some(url) => Some((
                deadpool_redis::Config::from_url(url.clone())
                    .create_pool(Some(deadpool_redis::Runtime::Tokio1))
                    .map_err(|e| anyhow::anyhow!("REDIS_URL is not usable: {e}"))?,
                url.clone(),
            )),
            None => None,
        };
        let limiter = crate::tenancy::limits::Limiter::new(
            config.limits.enforce,
            redis.as_ref().map(|(pool, _)| pool.clone()),
            Duration::from_millis(config.limits.redis_timeout_ms),
        );
        let sessions = crate::auth::jwt::Sessions::new(config.jwt_keys.as_deref());
        let artifacts = crate::artifacts::Store::open(&config.artifacts)?;
        let search = crate::search::Search::new(&config.search)?;
        let bus = Arc::new(crate::events::bus::Bus::new(
            config.events.subscriber_buffer,
            redis,
        ));
        // Runs are written together on Postgres only: on SQLite `runs` is `off`.
        let grouped = match config.database.group_commit.mode {
            crate::config::GroupCommitMode::Off => false,
            crate::config::GroupCommitMode::Runs => sqlite_writer.is_none(),
            crate::config::GroupCommitMode::All => true,
        };
        let group = grouped.then(|| {
            crate::db::group::GroupCommit::new(
                config.database.group_commit.clone(),
                config.idempotency_ttl_hours,
                db.clone(),
                sqlite_writer.clone(),
            )
        });
        Ok(Self {
            db,
            background_db,
            reads,
            statements,
            config,
            key_cache: KeyCache::default(),
            documents: Default::default(),
            bus,
            limiter,
            artifacts,
            search,
            sessions,
            wake: Wake::default(),
            instance_id: format!("{}:{}", std::process::id(), uuid::Uuid::now_v7().simple()),
            revoked: tokio::sync::broadcast::channel(256).0,
            ws_connections: Default::default(),
            group,
            sqlite_writer,
        })
    }

    pub fn is_postgres(&self) -> bool {
        self.sqlite_writer.is_none()
    }

    /// Begins a read-write transaction: `BEGIN IMMEDIATE` on SQLite (so a second process cannot
    /// interleave), a plain READ COMMITTED transaction on Postgres, where row locks taken by the
    /// conditional updates serialise writers of the same stock level.
    pub async fn begin_write(&self) -> Result<WriteTxn<'_>, DbErr> {
        self.begin_write_on(&self.db).await
    }

    /// [`App::begin_write`] on the background handle.
    pub async fn begin_background_write(&self) -> Result<WriteTxn<'_>, DbErr> {
        self.begin_write_on(&self.background_db).await
    }

    async fn begin_write_on(&self, db: &DatabaseConnection) -> Result<WriteTxn<'_>, DbErr> {
        let writer = match &self.sqlite_writer {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        let txn = crate::db::begin_write(db, writer.is_some()).await?;
        Ok(WriteTxn {
            txn,
            _writer: writer,
        })
    }
}

#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}
