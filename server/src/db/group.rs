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
//!
//! A run of one tenant's single relative adjustments (`adjustStock` of one change, the hottest
//! write there is) does not take seats: the lane hands the whole run to
//! [`together::adjust_together`], which writes it in four statements however long it is, and
//! answers each call its own change. If anything in the run needs a write's own path (an
//! unknown SKU, a new level, a refused change, a replayed key), the lane rolls the run back and
//! seats each call in a group as above, so the fast path never answers differently from it.
//!
//! In `runs` mode (the default) only those adjustments queue in the lanes (what cannot run
//! together, a lone call or a run that fell back, takes seats as above); every other write has
//! a transaction of its own and never comes here.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::{GroupCommitConfig, GroupCommitMode};
use crate::ledger::write::StockChange;
use crate::ledger::write::together::{self, Adjustment};

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

/// Word of a group's commit, for a write the lane ran itself.
pub struct Commit(oneshot::Receiver<Committed>);

impl Commit {
    /// Waits for the commit of the write's group: an error means nothing of it was committed
    /// (or, if the commit's answer was lost, that nobody can tell).
    pub async fn wait(self) -> Result<(), DbErr> {
        match self.0.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(copy(&err)),
            Err(_) => Err(DbErr::Custom(
                "the group commit ended without an answer".into(),
            )),
        }
    }
}

/// How an adjustment was taken: run with its neighbours (its change, once the group commits),
/// or seated to run on its own.
pub enum Joined {
    Done(StockChange, Commit),
    Seat(Seat),
}

/// A write waiting for its lane.
enum Waiter {
    /// Any write: it runs its own statements in a savepoint of a group.
    Seat(oneshot::Sender<Result<Seat, DbErr>>),
    /// A single relative adjustment, which the lane may run together with its tenant's others.
    Adjust(Box<Adjustment>, oneshot::Sender<Result<Joined, DbErr>>),
}

impl Waiter {
    fn is_closed(&self) -> bool {
        match self {
            Waiter::Seat(tx) => tx.is_closed(),
            Waiter::Adjust(_, tx) => tx.is_closed(),
        }
    }

    fn fail(self, err: DbErr) {
        match self {
            Waiter::Seat(tx) => {
                let _ = tx.send(Err(err));
            }
            Waiter::Adjust(_, tx) => {
                let _ = tx.send(Err(err));
            }
        }
    }

    /// Hands the write its seat; false if it went away meanwhile.
    fn seat(self, seat: Seat) -> bool {
        match self {
            Waiter::Seat(tx) => tx.send(Ok(seat)).is_ok(),
            Waiter::Adjust(_, tx) => tx.send(Ok(Joined::Seat(seat))).is_ok(),
        }
    }

    fn adjustment(&self) -> Option<&Adjustment> {
        match self {
            Waiter::Adjust(adjustment, _) => Some(adjustment),
            Waiter::Seat(_) => None,
        }
    }
}

/// Groups committed (or failed) and the writes they held, since start.
#[derive(Default)]
pub struct Stats {
    groups: AtomicU64,
    writes: AtomicU64,
    /// Adjustments answered from a run written together (a subset of `writes`).
    together: AtomicU64,
}

pub struct GroupCommit {
    config: GroupCommitConfig,
    /// How long the idempotency keys of adjustments run together are kept.
    key_ttl_hours: i64,
    stats: Arc<Stats>,
    db: DatabaseConnection,
    sqlite_writer: Option<Arc<Mutex<()>>>,
    /// The lanes, started on first use (their tasks end when this is dropped).
    lanes: OnceLock<Vec<mpsc::UnboundedSender<Waiter>>>,
}

impl GroupCommit {
    pub fn new(
        config: GroupCommitConfig,
        key_ttl_hours: i64,
        db: DatabaseConnection,
        sqlite_writer: Option<Arc<Mutex<()>>>,
    ) -> Self {
        Self {
            config,
            key_ttl_hours,
            stats: Arc::default(),
            db,
            sqlite_writer,
            lanes: OnceLock::new(),
        }
    }

    /// Whether every write takes a seat (`on`), or only runs of adjustments are gathered and
    /// every other write has a transaction of its own (`runs`).
    pub fn seats_every_write(&self) -> bool {
        self.config.mode == GroupCommitMode::All
    }

    /// Groups begun and writes seated since start.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.stats.groups.load(Ordering::Relaxed),
            self.stats.writes.load(Ordering::Relaxed),
        )
    }

    /// Adjustments answered from runs written together, since start.
    pub fn together(&self) -> u64 {
        self.stats.together.load(Ordering::Relaxed)
    }

    /// Waits for a seat in the tenant's lane.
    pub async fn join(&self, tenant_id: &str) -> Result<Seat, DbErr> {
        let (waiter, seat) = oneshot::channel();
        self.send(tenant_id, Waiter::Seat(waiter))?;
        match seat.await {
            Ok(Ok(seat)) => Ok(seat),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(DbErr::Custom("the group commit lane stopped".into())),
        }
    }

    /// Queues a single adjustment in its tenant's lane: it comes back done (with its change,
    /// to be answered once the group commits) or seated, to run on its own.
    pub async fn adjust(&self, adjustment: Adjustment) -> Result<Joined, DbErr> {
        let (waiter, joined) = oneshot::channel();
        let tenant_id = adjustment.tenant_id().to_owned();
        self.send(&tenant_id, Waiter::Adjust(Box::new(adjustment), waiter))?;
        match joined.await {
            Ok(Ok(joined)) => Ok(joined),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(DbErr::Custom("the group commit lane stopped".into())),
        }
    }

    fn send(&self, tenant_id: &str, waiter: Waiter) -> Result<(), DbErr> {
        let lanes = self.lanes.get_or_init(|| self.start());
        let mut hasher = DefaultHasher::new();
        tenant_id.hash(&mut hasher);
        let lane = &lanes[(hasher.finish() % lanes.len() as u64) as usize];
        lane.send(waiter)
            .map_err(|_| DbErr::Custom("the group commit lane stopped".into()))
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
                    Lane {
                        db: self.db.clone(),
                        sqlite_writer: self.sqlite_writer.clone(),
                        stats: self.stats.clone(),
                        max_members: self.config.max_members.max(1),
                        window: std::time::Duration::from_millis(self.config.window_ms),
                        key_ttl_hours: self.key_ttl_hours,
                    },
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
) -> Result<(DatabaseTransaction, Writer), DbErr> {
    let writer = match sqlite_writer {
        Some(lock) => Some(lock.clone().lock_owned().await),
        None => None,
    };
    let txn = crate::db::begin_write(db, writer.is_some()).await?;
    Ok((txn, writer))
}

struct Lane {
    db: DatabaseConnection,
    sqlite_writer: Option<Arc<Mutex<()>>>,
    stats: Arc<Stats>,
    max_members: usize,
    window: std::time::Duration,
    key_ttl_hours: i64,
}

type Writer = Option<tokio::sync::OwnedMutexGuard<()>>;

async fn lane(lane: Lane, mut waiting: mpsc::UnboundedReceiver<Waiter>) {
    let mut committing: Option<JoinHandle<()>> = None;
    // A write taken from the queue that did not fit the run before it: first in the next.
    let mut held: Option<Waiter> = None;
    loop {
        let first = match held.take() {
            Some(waiter) => waiter,
            None => match waiting.recv().await {
                Some(waiter) => waiter,
                None => break,
            },
        };
        let mut queue = std::collections::VecDeque::from([first]);
        // A run of one tenant's adjustments, as long as the queue holds one (Postgres only:
        // SQLite has one writer, and its statements cost no round trips).
        if lane.sqlite_writer.is_none()
            && let Some(tenant) = queue[0].adjustment().map(|a| a.tenant_id().to_owned())
        {
            while queue.len() < lane.max_members {
                match waiting.try_recv() {
                    Ok(next) if next.adjustment().is_some_and(|a| a.tenant_id() == tenant) => {
                        queue.push_back(next)
                    }
                    Ok(next) => {
                        held = Some(next);
                        break;
                    }
                    Err(_) => break,
                }
            }
            queue.retain(|waiter| !waiter.is_closed());
            if queue.len() >= 2 {
                match run_together(&lane, queue, &mut committing).await {
                    None => continue,
                    Some(back) => queue = back,
                }
            }
        }
        // What cannot run together takes seats. Even in `runs` mode a lone adjustment stays in
        // its lane rather than running beside the lane's groups: on a hot level those would
        // queue on its row lock while holding pooled connections the lane needs (measured:
        // 1.25x a transaction per call on one hot SKU that way, against 3x with seats).
        seat_in_turn(&lane, queue, &mut waiting, &mut committing).await;
    }
    if let Some(last) = committing {
        let _ = last.await;
    }
}

/// Writes a run of adjustments together and tells each its change; `None` when done, else the
/// run back (rolled back), for its writes to be seated one by one.
async fn run_together(
    lane: &Lane,
    run: std::collections::VecDeque<Waiter>,
    committing: &mut Option<JoinHandle<()>>,
) -> Option<std::collections::VecDeque<Waiter>> {
    let (group, writer) = match begin(&lane.db, &lane.sqlite_writer).await {
        Ok(begun) => begun,
        Err(_) => return Some(run),
    };
    let number = lane.stats.groups.fetch_add(1, Ordering::Relaxed) + 1;
    let started = Instant::now();
    let adjustments: Vec<&Adjustment> = run.iter().filter_map(Waiter::adjustment).collect();
    let done = together::adjust_together(&group, &adjustments, lane.key_ttl_hours).await;
    let changes = match done {
        Ok(Some(changes)) if changes.len() == run.len() => changes,
        outcome => {
            if let Err(err) = outcome {
                tracing::warn!(error = %err, group = number, "a run written together failed; its writes go one by one");
            }
            let _ = group.rollback().await;
            return Some(run);
        }
    };
    let size = run.len();
    lane.stats.writes.fetch_add(size as u64, Ordering::Relaxed);
    lane.stats
        .together
        .fetch_add(size as u64, Ordering::Relaxed);
    let mut members = Vec::with_capacity(size);
    for (waiter, change) in run.into_iter().zip(changes) {
        let Waiter::Adjust(_, tx) = waiter else {
            continue;
        };
        let (told, committed) = oneshot::channel();
        // One that went away meanwhile is committed all the same, as a write whose client
        // left after its commit would be.
        let _ = tx.send(Ok(Joined::Done(change, Commit(committed))));
        members.push(told);
    }
    metrics::histogram!("twh_group_commit_writes").record(size as f64);
    metrics::histogram!("twh_group_commit_window_seconds").record(started.elapsed().as_secs_f64());
    *committing = Some(commit_after(committing.take(), group, writer, members));
    None
}

/// Seats the queued writes, then whoever queues while they run, each in its savepoint of one
/// group, until none waits, the group is full or its window has passed; then commits it.
async fn seat_in_turn(
    lane: &Lane,
    mut queue: std::collections::VecDeque<Waiter>,
    waiting: &mut mpsc::UnboundedReceiver<Waiter>,
    committing: &mut Option<JoinHandle<()>>,
) {
    let (group, writer) = match begin(&lane.db, &lane.sqlite_writer).await {
        Ok(begun) => begun,
        Err(err) => {
            // No transaction to be had (the database is gone or the pool exhausted): the
            // queued writes fail with it, and the lane goes on with whoever queues next.
            for waiter in queue {
                waiter.fail(copy(&err));
            }
            return;
        }
    };
    let number = lane.stats.groups.fetch_add(1, Ordering::Relaxed) + 1;
    let started = Instant::now();
    let mut members = Vec::with_capacity(lane.max_members);
    let mut next = queue.pop_front();
    while let Some(waiter) = next.take() {
        if waiter.is_closed() {
            next = queue.pop_front().or_else(|| waiting.try_recv().ok());
            continue;
        }
        let txn = match group.begin().await {
            Ok(txn) => txn,
            Err(err) => {
                // The connection is gone or the group is broken: this write fails and the
                // group commits (or fails) without it; the ones queued behind it too.
                waiter.fail(err);
                for rest in queue.drain(..) {
                    rest.fail(DbErr::Custom("the group commit's connection failed".into()));
                }
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
        lane.stats.writes.fetch_add(1, Ordering::Relaxed);
        // A write that went away meanwhile drops its seat: the savepoint rolls back.
        if waiter.seat(seat) {
            // Dropped without a word (the request was cancelled): its savepoint rolled back
            // when its transaction was dropped, and it waits for nothing.
            let _ = left.await;
            members.push(told);
        }
        // The writes queued here were promised a seat: the limits only stop newcomers.
        next = queue.pop_front();
        if next.is_none() && members.len() < lane.max_members && started.elapsed() < lane.window {
            next = waiting.try_recv().ok();
        }
    }
    let size = members.len();
    metrics::histogram!("twh_group_commit_writes").record(size as f64);
    metrics::histogram!("twh_group_commit_window_seconds").record(started.elapsed().as_secs_f64());
    *committing = Some(commit_after(committing.take(), group, writer, members));
}

/// Commits a group after the one before it, and tells its members how it went.
fn commit_after(
    before: Option<JoinHandle<()>>,
    group: DatabaseTransaction,
    writer: Writer,
    members: Vec<oneshot::Sender<Committed>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Some(before) = before {
            let _ = before.await;
        }
        let size = members.len();
        let result = group.commit().await.map_err(Arc::new);
        drop(writer);
        if let Err(err) = &result {
            tracing::error!(error = %err, writes = size, "a group commit failed");
        }
        for member in members {
            let _ = member.send(result.clone());
        }
    })
}
