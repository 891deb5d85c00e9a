//! The event bus: relayed events reach this process's subscribers in log order, gap-free.
//!
//! In process by default. With `REDIS_URL` the relay publishes each batch to a Redis channel
//! and every replica's listener feeds it here, so a subscriber on one replica sees writes made
//! on another. Either way one feeder task delivers: an event older than the last delivered is a
//! duplicate and dropped; one that skips positions first has the gap read from the log (a lost
//! pub/sub message, a replica that was reconnecting); and a once-a-second check of the log's
//! end catches what no message announced. Per tenant, subscribers share one bounded broadcast
//! channel: a subscriber that falls a whole buffer behind is told so and dropped, never buffered
//! without bound.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement};
use tokio::sync::{broadcast, mpsc};

use super::Published;

/// The Redis channel of one database's replicas: `twh:events:<installation>`, the id the
/// migrations gave the database, so two deployments (or test runs) sharing a Redis never mix.
pub const CHANNEL_PREFIX: &str = "twh:events:";

enum Inbound {
    Batch(Vec<Published>),
    /// Look at the end of the log for events no message announced.
    Check,
}

pub struct Bus {
    tenants: Mutex<HashMap<String, broadcast::Sender<Arc<Published>>>>,
    /// Every tenant's events, for the server's own consumers (key revocations).
    all: broadcast::Sender<Arc<Published>>,
    capacity: usize,
    inbox: mpsc::UnboundedSender<Inbound>,
    inbox_rx: Mutex<Option<mpsc::UnboundedReceiver<Inbound>>>,
    redis: Option<deadpool_redis::Pool>,
    redis_url: Option<String>,
    channel: std::sync::OnceLock<String>,
}

/// A subscriber fell more than the buffer behind and was dropped.
#[derive(Debug, Clone, Copy)]
pub struct Lagged(pub u64);

impl Bus {
    pub fn new(capacity: usize, redis: Option<(deadpool_redis::Pool, String)>) -> Self {
        let (redis, redis_url) = match redis {
            Some((pool, url)) => (Some(pool), Some(url)),
            None => (None, None),
        };
        let (inbox, rx) = mpsc::unbounded_channel();
        Self {
            tenants: Mutex::default(),
            all: broadcast::channel(4096).0,
            capacity: capacity.max(1),
            inbox,
            inbox_rx: Mutex::new(Some(rx)),
            redis,
            redis_url,
            channel: std::sync::OnceLock::new(),
        }
    }

    pub fn uses_redis(&self) -> bool {
        self.redis.is_some()
    }

    /// Publishes a relayed batch: to Redis when configured (every replica, this one included,
    /// gets it from there), else straight to this process's feeder.
    pub async fn publish(&self, events: Vec<Published>) {
        if events.is_empty() {
            return;
        }
        if let (Some(pool), Some(channel)) = (&self.redis, self.channel.get()) {
            match publish_redis(pool, channel, &events).await {
                Ok(()) => return,
                // The feeder's check reads them from the log instead; deliver locally now.
                Err(err) => tracing::warn!(error = %err, "publishing events to Redis failed"),
            }
        }
        let _ = self.inbox.send(Inbound::Batch(events));
    }

    /// A tenant's live events from now on.
    pub fn subscribe(&self, tenant_id: &str) -> broadcast::Receiver<Arc<Published>> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        tenants
            .entry(tenant_id.to_owned())
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .subscribe()
    }

    /// A tenant's live events as a stream that ends after reporting a lag.
    pub fn stream(
        &self,
        tenant_id: &str,
    ) -> impl Stream<Item = Result<Arc<Published>, Lagged>> + use<> {
        let rx = self.subscribe(tenant_id);
        let open = OpenSubscription::new();
        futures_util::stream::unfold(Some((rx, open)), |state| async move {
            let (mut rx, open) = state?;
            match rx.recv().await {
                Ok(event) => Some((Ok(event), Some((rx, open)))),
                Err(broadcast::error::RecvError::Lagged(n)) => Some((Err(Lagged(n)), None)),
                Err(broadcast::error::RecvError::Closed) => None,
            }
        })
        .boxed()
    }

    /// Every tenant's events from now on (internal consumers only, never a subscriber).
    pub fn all(&self) -> broadcast::Receiver<Arc<Published>> {
        self.all.subscribe()
    }

    fn deliver(&self, event: Published) {
        let event = Arc::new(event);
        if self.all.receiver_count() > 0 {
            let _ = self.all.send(event.clone());
        }
        let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = tenants.get(&event.tenant_id) {
            if sender.receiver_count() == 0 {
                tenants.remove(&event.tenant_id);
            } else {
                let _ = sender.send(event);
            }
        }
    }

    /// Starts the feeder (and the Redis listener when configured); call once per process.
    pub fn start(
        self: &Arc<Self>,
        db: DatabaseConnection,
        stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let Some(rx) = self
            .inbox_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        let bus = self.clone();
        let db_for_channel = db.clone();
        let mut feeder_stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = feed(bus, db, rx) => {}
                _ = feeder_stop.changed() => {}
            }
        });
        let checker = self.inbox.clone();
        let mut check_stop = stop.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => if checker.send(Inbound::Check).is_err() { return },
                    _ = check_stop.changed() => return,
                }
            }
        });
        if let Some(url) = self.redis_url.clone() {
            let inbox = self.inbox.clone();
            let bus = self.clone();
            let mut listen_stop = stop;
            tokio::spawn(async move {
                let channel = loop {
                    match channel_of(&db_for_channel).await {
                        Ok(channel) => break channel,
                        Err(err) => {
                            tracing::warn!(error = %err, "reading the installation id failed");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                };
                let _ = bus.channel.set(channel.clone());
                tokio::select! {
                    _ = listen(url, channel, inbox) => {}
                    _ = listen_stop.changed() => {}
                }
            });
        }
    }
}

async fn publish_redis(
    pool: &deadpool_redis::Pool,
    channel: &str,
    events: &[Published],
) -> anyhow::Result<()> {
    let payload = serde_json::to_string(events)?;
    let mut conn = pool.get().await?;
    let _: i64 = redis::cmd("PUBLISH")
        .arg(channel)
        .arg(payload)
        .query_async(&mut conn)
        .await?;
    Ok(())
}

/// Feeds Redis messages to the feeder, reconnecting with backoff; after each (re)connect a
/// check fills whatever was published while it was away.
async fn listen(url: String, channel: String, inbox: mpsc::UnboundedSender<Inbound>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let result: anyhow::Result<()> = async {
            let client = redis::Client::open(url.as_str())?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            let _ = inbox.send(Inbound::Check);
            let mut messages = pubsub.on_message();
            while let Some(message) = messages.next().await {
                let payload: String = message.get_payload()?;
                match serde_json::from_str::<Vec<Published>>(&payload) {
                    Ok(events) => {
                        if inbox.send(Inbound::Batch(events)).is_err() {
                            return Ok(());
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "an unreadable message on the event channel")
                    }
                }
            }
            anyhow::bail!("the Redis subscription ended")
        }
        .await;
        if let Err(err) = result {
            tracing::warn!(error = %err, "the Redis event listener stopped; reconnecting");
        }
        if inbox.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// The installation's Redis channel, `twh:events:<installation id>`.
pub async fn channel_of(db: &DatabaseConnection) -> Result<String, DbErr> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT position FROM relay_cursors WHERE name = 'installation'",
        ))
        .await?;
    let Some(row) = row else {
        return Err(DbErr::RecordNotFound(
            "the installation id (relay_cursors 'installation') is missing".into(),
        ));
    };
    let id: i64 = row.try_get("", "position")?;
    Ok(format!("{CHANNEL_PREFIX}{id}"))
}

/// The Redis channel this process publishes on, once known.
impl Bus {
    pub fn channel(&self) -> Option<&str> {
        self.channel.get().map(String::as_str)
    }
}

async fn log_end(db: &DatabaseConnection) -> Result<i64, DbErr> {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT max(position) AS last FROM outbox_events",
        ))
        .await?;
    Ok(row
        .and_then(|r| r.try_get::<Option<i64>>("", "last").ok())
        .flatten()
        .unwrap_or(0))
}

async fn feed(bus: Arc<Bus>, db: DatabaseConnection, mut rx: mpsc::UnboundedReceiver<Inbound>) {
    // Subscribers see what is relayed from now on; the log serves the past.
    let mut last = loop {
        match log_end(&db).await {
            Ok(end) => break end,
            Err(err) => {
                tracing::warn!(error = %err, "reading the end of the event log failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    while let Some(message) = rx.recv().await {
        let result = match message {
            Inbound::Batch(events) => deliver_batch(&bus, &db, &mut last, events).await,
            Inbound::Check => match log_end(&db).await {
                Ok(end) if end > last => fill(&bus, &db, &mut last, end + 1).await,
                Ok(_) => Ok(()),
                Err(err) => Err(err),
            },
        };
        if let Err(err) = result {
            tracing::warn!(error = %err, "reading the event log for subscribers failed");
        }
    }
}

async fn deliver_batch(
    bus: &Bus,
    db: &DatabaseConnection,
    last: &mut i64,
    mut events: Vec<Published>,
) -> Result<(), DbErr> {
    events.sort_by_key(|e| e.position);
    for event in events {
        if event.position <= *last {
            continue;
        }
        if event.position > *last + 1 {
            fill(bus, db, last, event.position).await?;
        }
        *last = event.position;
        bus.deliver(event);
    }
    Ok(())
}

/// Delivers the log's events after `last` and before `before`.
async fn fill(
    bus: &Bus,
    db: &DatabaseConnection,
    last: &mut i64,
    before: i64,
) -> Result<(), DbErr> {
    while *last + 1 < before {
        let page = super::range(db, *last, before, 1000).await?;
        if page.is_empty() {
            // Positions are assigned gap-free, so an empty page means the rows are not visible
            // to this connection yet; the next check takes them.
            return Ok(());
        }
        for event in page {
            *last = event.position;
            bus.deliver(event);
        }
    }
    Ok(())
}

/// Counts open subscriptions in `twh_subscriptions_open`.
pub struct OpenSubscription;

impl OpenSubscription {
    pub fn new() -> Self {
        metrics::gauge!("twh_subscriptions_open").increment(1.0);
        Self
    }
}

impl Default for OpenSubscription {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for OpenSubscription {
    fn drop(&mut self) {
        metrics::gauge!("twh_subscriptions_open").decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(tenant: &str, position: i64) -> Published {
        Published {
            tenant_id: tenant.into(),
            id: format!("evt_{position}"),
            event_type: "item.created".into(),
            aggregate_type: "item".into(),
            aggregate_id: "itm_1".into(),
            data: serde_json::json!({}),
            created_at: chrono::Utc::now(),
            position,
        }
    }

    #[tokio::test]
    async fn a_subscriber_sees_only_its_tenant() {
        let bus = Bus::new(16, None);
        let mut mine = bus.stream("a");
        let mut theirs = bus.subscribe("b");
        bus.deliver(event("b", 1));
        bus.deliver(event("a", 2));
        let got = mine.next().await.unwrap().unwrap();
        assert_eq!((got.tenant_id.as_str(), got.position), ("a", 2));
        assert_eq!(theirs.recv().await.unwrap().position, 1);
        assert!(theirs.try_recv().is_err(), "b got nothing of a's");
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_and_dropped() {
        let bus = Bus::new(2, None);
        let mut slow = bus.stream("t");
        for position in 1..=5 {
            bus.deliver(event("t", position));
        }
        match slow.next().await {
            Some(Err(Lagged(missed))) => assert_eq!(missed, 3),
            other => panic!("expected a lag, got {other:?}"),
        }
        assert!(slow.next().await.is_none(), "the stream ends after the lag");
    }
}
