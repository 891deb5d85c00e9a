//! Group commit: a tenant's concurrent writes share one database transaction and one commit.
//!
//! Each lane runs one group at a time on one connection. A write joins its tenant's lane and
//! waits for its turn; the lane opens a savepoint for it and hands it that nested transaction,
//! in which the write runs exactly as it would in a transaction of its own: its `commit`
//! releases the savepoint, its `rollback` (a refusal, a failed statement, a request that went
//! away) rolls back to it, so one write's failure never touches its neighbours. When no write is
//! waiting, the group is full or has run for its window, the lane commits the group and tells
//! every member how the commit went; a write is answered only then. A lone write never waits
//! for company: the group takes whoever queued while the writes before ran, so it widens with
//! load by itself, up to the window.
//!
//! While one group commits, the lane already runs the next on another connection; its writes
//! queue behind the committing group's row locks, never the other way round, and the lane's
//! commits happen in order. A tenant's writes always take the same lane, so two lanes never hold
//! locks the other waits for (tenants share no rows).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::GroupCommitConfig;

/// How a group's commit went, told to each member.
type Committed = Result<(), Arc<DbErr>>;

/// A copy of a database error for one of several writes, of the same kind where it matters
/// (a lost or unreachable database stays one: the caller answers 503, not 500).
fn copy(err: &DbErr) -> DbErr {
    match err {
        DbErr::Conn(e) => DbErr::Conn(e.clone()),
        DbErr::Exec(e) => DbErr::Exec(e.clone()),
        DbErr::Query(e) => DbErr::Query(e.clone()),
        DbErr::ConnectionAcquire(e) => DbErr::ConnectionAcquire(*e),
        other => DbErr::Custom(other.to_string()),
    }
}

/// A write's place in a group: its savepoint, and word of the group's commit.
pub struct Seat {
    pub txn: DatabaseTransaction,
    pub ticket: Ticket,
}

/// What a write holds while it runs in its savepoint.
pub struct Ticket {
    /// Which group (numbered from 1 in this process) the write is in.
    pub group: u64,
    finished: oneshot::Sender<()>,
    committed: oneshot::Receiver<Committed>,
}

impl Ticket {
    /// Hands the lane back once the write has committed or rolled back its savepoint, then
    /// waits for the group's commit. An error means nothing of the group was committed, this
    /// write included (or, if the commit's answer was lost, that nobody can tell).
    pub async fn leave(self) -> Result<(), DbErr> {
        let _ = self.finished.send(());
        match self.committed.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(copy(&err)),
            Err(_) => Err(DbErr::Custom(
                "the group commit ended without an answer".into(),
            )),
        }
    }
}

type Waiter = oneshot::Sender<Result<Seat, DbErr>>;

/// Groups committed (or failed) and the writes they held, since start.
#[derive(Default)]
pub struct Stats {
    groups: AtomicU64,
    writes: AtomicU64,
}

pub struct GroupCommit {
    config: GroupCommitConfig,
    stats: Arc<Stats>,
    db: DatabaseConnection,
    sqlite_writer: Option<Arc<Mutex<()>>>,
    /// The lanes, started on first use (their tasks end when this is dropped).
    lanes: OnceLock<Vec<mpsc::UnboundedSender<Waiter>>>,
}

impl GroupCommit {
    pub fn new(
        config: GroupCommitConfig,
        db: DatabaseConnection,
        sqlite_writer: Option<Arc<Mutex<()>>>,
    ) -> Self {
        Self {
            config,
            stats: Arc::default(),
            db,
            sqlite_writer,
            lanes: OnceLock::new(),
        }
    }

    /// Groups begun and writes seated since start.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.stats.groups.load(Ordering::Relaxed),
            self.stats.writes.load(Ordering::Relaxed),
        )
    }

    /// Waits for a seat in the tenant's lane.
    pub async fn join(&self, tenant_id: &str) -> Result<Seat, DbErr> {
        let lanes = self.lanes.get_or_init(|| self.start());
        let mut hasher = DefaultHasher::new();
        tenant_id.hash(&mut hasher);
        let lane = &lanes[(hasher.finish() % lanes.len() as u64) as usize];
        let (waiter, seat) = oneshot::channel();
        lane.send(waiter)
            .map_err(|_| DbErr::Custom("the group commit lane stopped".into()))?;
        match seat.await {
            Ok(Ok(seat)) => Ok(seat),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(DbErr::Custom("the group commit lane stopped".into())),
        }
    }

    fn start(&self) -> Vec<mpsc::UnboundedSender<Waiter>> {
        let lanes = if self.sqlite_writer.is_some() {
            1
        } else {
            self.config.lanes.max(1)
        };
        (0..lanes)
            .map(|_| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(lane(
                    self.db.clone(),
                    self.sqlite_writer.clone(),
                    self.stats.clone(),
                    self.config.max_members.max(1),
                    std::time::Duration::from_millis(self.config.window_ms),
                    rx,
                ));
                tx
            })
            .collect()
    }
}

async fn begin(
    db: &DatabaseConnection,
    sqlite_writer: &Option<Arc<Mutex<()>>>,
) -> Result<
    (
        DatabaseTransaction,
        Option<tokio::sync::OwnedMutexGuard<()>>,
    ),
    DbErr,
> {
    let writer = match sqlite_writer {
        Some(lock) => Some(lock.clone().lock_owned().await),
        None => None,
    };
    let txn = crate::db::begin_write(db, writer.is_some()).await?;
    Ok((txn, writer))
}

async fn lane(
    db: DatabaseConnection,
    sqlite_writer: Option<Arc<Mutex<()>>>,
    stats: Arc<Stats>,
    max_members: usize,
    window: std::time::Duration,
    mut waiting: mpsc::UnboundedReceiver<Waiter>,
) {
    let mut committing: Option<JoinHandle<()>> = None;
    while let Some(first) = waiting.recv().await {
        let (group, writer) = match begin(&db, &sqlite_writer).await {
            Ok(begun) => begun,
            Err(err) => {
                let _ = first.send(Err(err));
                continue;
            }
        };
        let number = stats.groups.fetch_add(1, Ordering::Relaxed) + 1;
        let started = Instant::now();
        let mut members = Vec::with_capacity(max_members);
        let mut next = Some(first);
        while let Some(waiter) = next.take() {
            if waiter.is_closed() {
                next = waiting.try_recv().ok();
                continue;
            }
            let txn = match group.begin().await {
                Ok(txn) => txn,
                Err(err) => {
                    // The connection is gone or the group is broken: this write fails and the
                    // group commits (or fails) without it.
                    let _ = waiter.send(Err(err));
                    break;
                }
            };
            let (finished, left) = oneshot::channel();
            let (told, committed) = oneshot::channel();
            let seat = Seat {
                txn,
                ticket: Ticket {
                    group: number,
                    finished,
                    committed,
                },
            };
            stats.writes.fetch_add(1, Ordering::Relaxed);
            // A write that went away meanwhile drops its seat: the savepoint rolls back.
            if waiter.send(Ok(seat)).is_ok() {
                // Dropped without a word (the request was cancelled): its savepoint rolled back
                // when its transaction was dropped, and it waits for nothing.
                let _ = left.await;
                members.push(told);
            }
            if members.len() >= max_members || started.elapsed() >= window {
                break;
            }
            next = waiting.try_recv().ok();
        }
        let size = members.len();
        metrics::histogram!("twh_group_commit_writes").record(size as f64);
        metrics::histogram!("twh_group_commit_window_seconds")
            .record(started.elapsed().as_secs_f64());
        // The next group starts now; this one commits after the one before it.
        let before = committing.take();
        committing = Some(tokio::spawn(async move {
            if let Some(before) = before {
                let _ = before.await;
            }
            let result = group.commit().await.map_err(Arc::new);
            drop(writer);
            if let Err(err) = &result {
                tracing::error!(error = %err, writes = size, "a group commit failed");
            }
            for member in members {
                let _ = member.send(result.clone());
            }
        }));
    }
    if let Some(last) = committing {
        let _ = last.await;
    }
}
