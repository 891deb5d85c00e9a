//! Starting and stopping the HTTP server: bind, serve until a shutdown signal, let in-flight
//! requests finish, and run the background sweepers (expired idempotency keys, reservations).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::{App, AppState};
use crate::config::Config;
use crate::startup::StartupError;
use crate::{db, http, idempotency, observability};

/// Connects, migrates and builds the shared state.
pub async fn prepare(config: Config) -> anyhow::Result<AppState> {
    observability::init_metrics();
    let db = db::connect(&config.database).await?;
    db::migrate(&db).await?;
    Ok(AppState(Arc::new(App::new(db, config)?)))
}

/// A running server; dropping the handle does not stop it, `shutdown` does.
pub struct Running {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stops accepting connections and waits for in-flight requests to finish.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.task.await??;
        Ok(())
    }
}

/// Binds and serves in the background.
pub async fn spawn(state: AppState) -> anyhow::Result<Running> {
    let listener = bind(state.config.http.bind).await?;
    spawn_on(listener, state).await
}

/// Takes the listening address, or says which one is unusable and which setting picks another.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(addr)
        .await
        .map_err(|err| StartupError::bind(addr, &err))
}

/// Serves in the background on a listener from [`bind`].
pub async fn spawn_on(listener: TcpListener, state: AppState) -> anyhow::Result<Running> {
    let addr = listener.local_addr()?;
    // Responses are small and answered at once: Nagle's delay would only add latency.
    let listener = listener.tap_io(|stream| {
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "could not set TCP_NODELAY");
        }
    });
    let (stop, mut stopped) = watch::channel(false);
    // The limiter's Redis keys are named before the first request: a call checked in process
    // before them and the next in Redis would see two buckets.
    if state.limiter.uses_redis() {
        match crate::events::bus::channel_of(&state.background_db).await {
            Ok(channel) => state.limiter.name_from_channel(&channel),
            Err(err) => {
                tracing::warn!(error = %err, "reading the installation id failed; limits run in process until it is known")
            }
        }
    }
    start_background(&state, &stop);
    let sweeper_state = state.clone();
    let mut sweeper_stop = stop.subscribe();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    match idempotency::sweep_expired(&sweeper_state.db).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(idempotency.expired = n, "swept expired idempotency keys"),
                        Err(err) => tracing::warn!(error = %err, "sweeping idempotency keys failed"),
                    }
                    match crate::artifacts::sweep_expired(&sweeper_state.artifacts, &sweeper_state.background_db).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(artifacts.expired = n, "deleted expired artifacts"),
                        Err(err) => tracing::warn!(error = %err, "deleting expired artifacts failed"),
                    }
                }
                _ = sweeper_stop.changed() => break,
            }
        }
    });
    let expiry_state = state.clone();
    let mut expiry_stop = stop.subscribe();
    tokio::spawn(async move {
        let every = Duration::from_millis(expiry_state.config.orders.reservation_sweep_ms);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    match crate::orders::reservations::expire_due(&expiry_state, 100).await {
                        Ok(0) => {}
                        Ok(n) => {
                            expiry_state.wake.relay.notify_one();
                            tracing::info!(reservations.expired = n, "expired reservations");
                        }
                        Err(err) => tracing::warn!(error = ?err, "expiring reservations failed"),
                    }
                }
                _ = expiry_stop.changed() => break,
            }
        }
    });
    let router = http::router(state).await?;
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stopped.changed().await;
            })
            .await
    });
    Ok(Running { addr, stop, task })
}

/// The event machinery every serving process runs: the bus feeder (and Redis listener), the
/// outbox relay and the webhook dispatcher. Each coordinates with other processes through the
/// database, so any number may run.
pub fn start_background(state: &AppState, stop: &watch::Sender<bool>) {
    state
        .bus
        .start(state.background_db.clone(), stop.subscribe());
    // Revocations made on any replica reach this one's key cache through the bus.
    let mut all = state.bus.all();
    let mut revocations_stop = stop.subscribe();
    let revocations = state.clone();
    tokio::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            tokio::select! {
                event = all.recv() => match event {
                    Ok(event) if event.event_type == crate::auth::keys::API_KEY_REVOKED => {
                        revocations.key_cache.evict_key(&event.aggregate_id);
                        let _ = revocations
                            .revoked
                            .send(crate::app::Revoked::Key(event.aggregate_id.clone()));
                    }
                    Ok(event) if event.event_type == crate::tenancy::operator::TENANT_PLAN_CHANGED => {
                        revocations.limiter.evict_plan(&event.tenant_id);
                    }
                    Ok(event) if event.event_type == crate::tenancy::operator::TENANT_SUSPENDED => {
                        revocations.key_cache.evict_tenant(&event.tenant_id);
                        let _ = revocations
                            .revoked
                            .send(crate::app::Revoked::Tenant(event.tenant_id.clone()));
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => revocations.key_cache.clear(),
                    Err(RecvError::Closed) => return,
                },
                _ = revocations_stop.changed() => return,
            }
        }
    });
    tokio::spawn(meter_flush(state.clone(), stop.subscribe()));
    tokio::spawn(crate::events::relay::run(
        state.clone(),
        Duration::from_millis(state.config.events.relay_poll_ms),
        stop.subscribe(),
    ));
    tokio::spawn(crate::search::indexer::run(
        state.clone(),
        Duration::from_millis(state.config.search.poll_ms),
        stop.subscribe(),
    ));
    crate::jobs::worker::start(state, stop);
    tokio::spawn(crate::webhooks::dispatch::run(
        state.clone(),
        Duration::from_millis(state.config.webhooks.dispatch_poll_ms),
        stop.subscribe(),
    ));
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Names the limiter's Redis keys once the bus knows the installation, then adds what this
/// process metered to `usage_daily` every `TWH_USAGE_FLUSH_MS`, and once more on the way out.
async fn meter_flush(state: AppState, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(state.config.limits.flush_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut named = !state.limiter.uses_redis();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        if !named && let Some(channel) = state.bus.channel() {
            state.limiter.name_from_channel(channel);
            named = true;
        }
        state.limiter.sync_counts().await;
        if let Err(err) = state.limiter.flush(&state.background_db).await {
            tracing::warn!(error = %err, "writing metered usage failed; it stays pending");
        }
        if let Err(err) = state.limiter.errors.flush(&state.background_db).await {
            tracing::warn!(error = %err, "writing error counts failed; they stay pending");
        }
    }
    state.limiter.sync_counts().await;
    if let Err(err) = state.limiter.flush(&state.background_db).await {
        tracing::warn!(error = %err, "writing metered usage at shutdown failed");
    }
    if let Err(err) = state.limiter.errors.flush(&state.background_db).await {
        tracing::warn!(error = %err, "writing error counts at shutdown failed");
    }
}
