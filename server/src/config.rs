//! Configuration from the environment, one struct per subsystem.

use std::net::SocketAddr;

use crate::startup::StartupError;

#[derive(Clone, Debug)]
pub struct Config {
    pub http: HttpConfig,
    pub database: DatabaseConfig,
    pub graphql: GraphqlConfig,
    pub idempotency_ttl_hours: i64,
    /// How long a request waits for another one holding the same idempotency key (Postgres).
    pub idempotency_wait_ms: u64,
    pub admin_token: Option<String>,
    pub orders: OrdersConfig,
    /// `REDIS_URL`: the event bus (and later rate limits) shared by every replica.
    pub redis_url: Option<String>,
    pub events: EventsConfig,
    pub webhooks: WebhookConfig,
    pub limits: LimitsConfig,
    /// `TWH_JWT_KEYS`: console session keys, `kid:secret` pairs, the first signing.
    pub jwt_keys: Option<Vec<(String, String)>>,
    pub artifacts: ArtifactsConfig,
    pub jobs: JobsConfig,
    pub search: SearchConfig,
}

#[derive(Clone, Debug)]
pub struct SearchConfig {
    /// `MEILISEARCH_URL`: search on Meilisearch; unset, the built-in engine.
    pub meilisearch_url: Option<String>,
    /// `MEILISEARCH_API_KEY`: its master key or an admin API key.
    pub meilisearch_api_key: Option<String>,
    /// `TWH_SEARCH_INDEX_PREFIX`: index names are this plus the tenant id.
    pub index_prefix: String,
    /// `TWH_SEARCH_POLL_MS`: how often the indexer looks for events when nothing woke it.
    pub poll_ms: u64,
}

#[derive(Clone, Debug)]
pub struct ArtifactsConfig {
    /// `TWH_OBJECT_STORE_URL`: `s3://bucket/prefix` or `file:///path`; unset, a folder.
    pub store_url: Option<String>,
    /// The folder used without a store URL: `artifacts` under `TWH_DATA_DIR` (default `data`).
    pub local_dir: std::path::PathBuf,
    /// `TWH_ARTIFACT_MAX_BYTES`: the largest upload.
    pub max_upload_bytes: u64,
    /// `TWH_ARTIFACT_RETENTION_DAYS`: how long a file is kept.
    pub retention_days: i64,
}

#[derive(Clone, Debug)]
pub struct JobsConfig {
    /// `TWH_JOB_WORKERS`: jobs run at once by this process (0: this process runs none).
    pub workers: usize,
    /// `TWH_JOB_LEASE_SECS`: how long a worker's claim lasts without renewal; a crashed
    /// worker's job is taken up again after this.
    pub lease_secs: u64,
    /// `TWH_JOB_POLL_MS`: how often an idle worker looks for work.
    pub poll_ms: u64,
    /// `TWH_JOB_BATCH_ROWS`: import rows committed together (at most 1000).
    pub batch_rows: usize,
    /// `TWH_JOB_MAX_ATTEMPTS`: runs of a job before it fails for good.
    pub max_attempts: i64,
    /// `TWH_RECONCILE_SCHEDULE`: `daily@HH:MM` (UTC), `every:SECONDS` or `off`.
    pub reconcile_schedule: ReconcileSchedule,
}

/// When the scheduled reconciliation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReconcileSchedule {
    Off,
    /// Every day at this UTC time (hour, minute).
    Daily(u32, u32),
    /// Every this many seconds.
    Every(u64),
}

impl ReconcileSchedule {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("off") {
            return Ok(Self::Off);
        }
        if let Some(time) = raw.strip_prefix("daily@") {
            let (h, m) = time.split_once(':').ok_or("write daily@HH:MM")?;
            let (h, m) = (
                h.parse::<u32>().map_err(|e| e.to_string())?,
                m.parse::<u32>().map_err(|e| e.to_string())?,
            );
            if h > 23 || m > 59 {
                return Err("the time is HH:MM, 00:00 to 23:59 (UTC)".into());
            }
            return Ok(Self::Daily(h, m));
        }
        if let Some(secs) = raw.strip_prefix("every:") {
            let secs = secs.parse::<u64>().map_err(|e| e.to_string())?;
            if !(1..=31 * 86400).contains(&secs) {
                return Err("every:SECONDS takes 1 to 2678400".into());
            }
            return Ok(Self::Every(secs));
        }
        Err("use daily@HH:MM (UTC), every:SECONDS or off".into())
    }
}

#[derive(Clone, Debug)]
pub struct LimitsConfig {
    /// `TWH_RATE_LIMITS=off` turns rate limits and quota refusals off (calls are still
    /// metered): for load tests and private installations.
    pub enforce: bool,
    /// How often each process adds what it metered to `usage_daily`.
    pub flush_ms: u64,
    /// How long a limit check waits for Redis before it decides in process instead (and opens
    /// a one-second breaker).
    pub redis_timeout_ms: u64,
}

/// `on`/`off` (also true/false, 1/0, yes/no).
fn switch(name: &'static str, default: bool) -> Result<bool, StartupError> {
    match std::env::var(name) {
        Ok(raw) if !raw.trim().is_empty() => match raw.trim().to_ascii_lowercase().as_str() {
            "on" | "true" | "1" | "yes" => Ok(true),
            "off" | "false" | "0" | "no" => Ok(false),
            _ => Err(StartupError::InvalidSetting {
                name,
                reason: "use on or off".into(),
                value: raw,
                default: if default { "on" } else { "off" }.into(),
            }),
        },
        _ => Ok(default),
    }
}

#[derive(Clone, Debug)]
pub struct EventsConfig {
    /// How often the relay looks for events no local write announced.
    pub relay_poll_ms: u64,
    /// Events a subscriber may fall behind before it is dropped.
    pub subscriber_buffer: usize,
    pub ws_max_connections_per_tenant: usize,
    pub ws_max_subscriptions_per_connection: usize,
    /// Seconds between the server's keep-alive pings on a WebSocket.
    pub ws_ping_secs: u64,
    /// How long a WebSocket may stay open without `connection_init`.
    pub ws_init_timeout_ms: u64,
}

#[derive(Clone, Debug)]
pub struct WebhookConfig {
    pub allow_private: bool,
    /// Seconds before each attempt: the first is `[0]`, a retry after the k-th failure waits `[k]`.
    pub retry_schedule: Vec<f64>,
    pub timeout_ms: u64,
    /// An endpoint failing continuously this long is disabled.
    pub disable_after_secs: u64,
    /// Requests in flight per endpoint.
    pub endpoint_concurrency: usize,
    /// How long a process's claim on an endpoint lasts without renewal.
    pub lease_secs: u64,
    pub dispatch_poll_ms: u64,
}

pub const DEFAULT_RETRY_SCHEDULE: &str = "0,5,300,1800,7200,18000,36000,36000";

/// Parses `TWH_WEBHOOK_RETRY_SCHEDULE`: comma-separated seconds, at least one, none negative.
pub fn parse_schedule(raw: &str) -> Result<Vec<f64>, String> {
    let schedule: Vec<f64> = raw
        .split(',')
        .map(|s| s.trim().parse::<f64>().map_err(|e| format!("{s:?}: {e}")))
        .collect::<Result<_, _>>()?;
    if schedule.is_empty() || schedule.len() > 50 {
        return Err("give 1 to 50 delays".into());
    }
    if schedule
        .iter()
        .any(|d| !d.is_finite() || *d < 0.0 || *d > 7.0 * 86400.0)
    {
        return Err("each delay is 0 to 604800 seconds".into());
    }
    Ok(schedule)
}

#[derive(Clone, Debug)]
pub struct OrdersConfig {
    /// How often expired reservations are looked for and released.
    pub reservation_sweep_ms: u64,
}

#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub bind: SocketAddr,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Time after which a request is answered with 503 and abandoned.
    pub request_timeout_secs: u64,
    /// Public base URL printed for users (defaults to http://<bind>).
    pub public_url: String,
}

#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    pub url: String,
    pub max_connections: u32,
    /// A pooled connection idle at least this long is pinged before use; busier ones are
    /// handed out as they are (a ping on every checkout costs a round trip per request).
    pub ping_after_idle_ms: u64,
    /// `TWH_DB_READ_POOL_SIZE` (half the pool, at least 2; 0: none): Postgres connections of
    /// their own for the catalog and stock reads, kept checked out (see `db::held`), beside the
    /// pool's `max_connections`.
    pub read_pool_size: u32,
    pub group_commit: GroupCommitConfig,
}

/// Group commit: a tenant's concurrent writes share one database transaction and one commit.
#[derive(Clone, Debug)]
pub struct GroupCommitConfig {
    /// `TWH_GROUP_COMMIT` (`runs`): which writes are gathered (see [`GroupCommitMode`]).
    pub mode: GroupCommitMode,
    /// `TWH_GROUP_COMMIT_LANES` (4; always 1 on SQLite): groups that run at once, each on its
    /// own connection. A tenant's writes always take the same lane.
    pub lanes: usize,
    /// `TWH_GROUP_COMMIT_MAX` (24, at most 30): writes in one group. Postgres keeps the ids of
    /// 64 subtransactions per transaction in shared memory and slows every snapshot past that;
    /// a keyed write takes two.
    pub max_members: usize,
    /// `TWH_GROUP_COMMIT_WINDOW_MS` (5): no write joins a group that has run this long, so
    /// the first write of a busy group waits at most this (plus the writes already seated).
    pub window_ms: u64,
}

/// Which writes group commit gathers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupCommitMode {
    /// `off`: every write in a transaction of its own.
    Off,
    /// `runs` (the default): concurrent `adjustStock` calls of one relative change each are
    /// written together, a run of a tenant's calls in four statements (Postgres; on SQLite
    /// this is `off`); a lone one takes a seat in its tenant's group, as with `on`; every
    /// other write runs in a transaction of its own.
    /// Measured on a 2-core machine: 1.6x the throughput of `off` over 1,000 SKUs, 3x on one
    /// hot SKU (bench/RESULTS.md).
    Runs,
    /// `on`: runs as above, and every other write in a savepoint of its tenant's group,
    /// one after another on one connection. Measured slower than `off` for those writes.
    All,
}

impl GroupCommitMode {
    fn parse(name: &'static str, default: Self) -> Result<Self, StartupError> {
        match std::env::var(name) {
            Ok(raw) if !raw.trim().is_empty() => match raw.trim().to_ascii_lowercase().as_str() {
                "off" | "false" | "0" | "no" => Ok(Self::Off),
                "runs" => Ok(Self::Runs),
                "on" | "true" | "1" | "yes" | "all" => Ok(Self::All),
                _ => Err(StartupError::InvalidSetting {
                    name,
                    reason: "use off, runs or on".into(),
                    value: raw,
                    default: default.as_str().into(),
                }),
            },
            _ => Ok(default),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Runs => "runs",
            Self::All => "on",
        }
    }
}

#[derive(Clone, Debug)]
pub struct GraphqlConfig {
    pub max_depth: usize,
    pub max_complexity: usize,
}

fn env_or<T: std::str::FromStr + std::fmt::Display>(
    name: &'static str,
    default: T,
) -> Result<T, StartupError>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(raw) if !raw.trim().is_empty() => {
            raw.trim()
                .parse()
                .map_err(|e: T::Err| StartupError::InvalidSetting {
                    name,
                    reason: e.to_string(),
                    value: raw,
                    default: default.to_string(),
                })
        }
        _ => Ok(default),
    }
}

/// Four database connections per CPU core, between 8 and 32. More connections than the
/// machine can drive only lengthen lock queues: on 2 cores the bench ran faster with 8 than
/// with 32 (bench/RESULTS.md), most of all on a hot SKU.
/// The kept read connections beside a pool of `pool` (half, at least 2).
fn read_pool_size(pool: u32) -> u32 {
    (pool / 2).max(2)
}

fn default_pool_size() -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as u32;
    (4 * cores).clamp(8, 32)
}

/// The bound on waiting for a key still in flight: Postgres takes 1 to 2^31-1 ms, and 0 would
/// mean no bound at all, the hung client the setting exists to prevent.
fn wait_ms(value: u64) -> anyhow::Result<u64> {
    anyhow::ensure!(
        (1..=i32::MAX as u64).contains(&value),
        "TWH_IDEMPOTENCY_WAIT_MS={value} is not valid: use 1 to {} milliseconds",
        i32::MAX
    );
    Ok(value)
}

pub const DEFAULT_SQLITE_URL: &str = "sqlite://data/twh.db?mode=rwc";

impl Default for Config {
    /// The embedded defaults: every setting's value when its variable is not set.
    fn default() -> Self {
        let bind: SocketAddr = ([127, 0, 0, 1], 8080).into();
        Self {
            http: HttpConfig {
                bind,
                max_body_bytes: 1024 * 1024,
                request_timeout_secs: 30,
                public_url: format!("http://{bind}"),
            },
            database: DatabaseConfig {
                url: DEFAULT_SQLITE_URL.to_owned(),
                max_connections: default_pool_size(),
                ping_after_idle_ms: 500,
                read_pool_size: read_pool_size(default_pool_size()),
                group_commit: GroupCommitConfig {
                    mode: GroupCommitMode::Runs,
                    lanes: 4,
                    max_members: 24,
                    window_ms: 5,
                },
            },
            graphql: GraphqlConfig {
                max_depth: 12,
                max_complexity: 20_000,
            },
            idempotency_ttl_hours: 24,
            idempotency_wait_ms: 5000,
            admin_token: None,
            orders: OrdersConfig {
                reservation_sweep_ms: 1000,
            },
            redis_url: None,
            events: EventsConfig {
                relay_poll_ms: 500,
                subscriber_buffer: 1024,
                ws_max_connections_per_tenant: 1000,
                ws_max_subscriptions_per_connection: 100,
                ws_ping_secs: 15,
                ws_init_timeout_ms: 10_000,
            },
            webhooks: WebhookConfig {
                allow_private: false,
                retry_schedule: parse_schedule(DEFAULT_RETRY_SCHEDULE).unwrap_or_default(),
                timeout_ms: 15_000,
                disable_after_secs: 5 * 24 * 3600,
                endpoint_concurrency: 8,
                lease_secs: 30,
                dispatch_poll_ms: 250,
            },
            limits: LimitsConfig {
                enforce: true,
                flush_ms: 1000,
                redis_timeout_ms: 250,
            },
            jwt_keys: None,
            artifacts: ArtifactsConfig {
                store_url: None,
                local_dir: std::path::PathBuf::from("data").join("artifacts"),
                max_upload_bytes: 100 * 1024 * 1024,
                retention_days: 30,
            },
            jobs: JobsConfig {
                workers: 2,
                lease_secs: 30,
                poll_ms: 500,
                batch_rows: 1000,
                max_attempts: 5,
                reconcile_schedule: ReconcileSchedule::Daily(2, 0),
            },
            search: SearchConfig {
                meilisearch_url: None,
                meilisearch_api_key: None,
                index_prefix: "twh_".to_owned(),
                poll_ms: 500,
            },
        }
    }
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        let d = Self::default();
        let bind: SocketAddr = env_or("TWH_BIND", d.http.bind)?;
        let url = std::env::var("DATABASE_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or(d.database.url);
        let max_connections = env_or("TWH_DB_POOL_SIZE", d.database.max_connections)?;
        Ok(Self {
            http: HttpConfig {
                bind,
                max_body_bytes: env_or("TWH_MAX_BODY_BYTES", d.http.max_body_bytes)?,
                request_timeout_secs: env_or(
                    "TWH_REQUEST_TIMEOUT_SECS",
                    d.http.request_timeout_secs,
                )?,
                public_url: env_or("TWH_PUBLIC_URL", format!("http://{bind}"))?,
            },
            database: DatabaseConfig {
                url,
                max_connections,
                ping_after_idle_ms: env_or(
                    "TWH_DB_PING_AFTER_IDLE_MS",
                    d.database.ping_after_idle_ms,
                )?,
                read_pool_size: env_or("TWH_DB_READ_POOL_SIZE", read_pool_size(max_connections))?,
                group_commit: GroupCommitConfig {
                    mode: GroupCommitMode::parse("TWH_GROUP_COMMIT", d.database.group_commit.mode)?,
                    lanes: env_or("TWH_GROUP_COMMIT_LANES", d.database.group_commit.lanes)?
                        .clamp(1, 64),
                    max_members: env_or(
                        "TWH_GROUP_COMMIT_MAX",
                        d.database.group_commit.max_members,
                    )?
                    .clamp(1, 30),
                    window_ms: env_or(
                        "TWH_GROUP_COMMIT_WINDOW_MS",
                        d.database.group_commit.window_ms,
                    )?,
                },
            },
            graphql: GraphqlConfig {
                max_depth: env_or("TWH_GRAPHQL_MAX_DEPTH", d.graphql.max_depth)?,
                max_complexity: env_or("TWH_GRAPHQL_MAX_COMPLEXITY", d.graphql.max_complexity)?,
            },
            idempotency_ttl_hours: env_or("TWH_IDEMPOTENCY_TTL_HOURS", d.idempotency_ttl_hours)?,
            idempotency_wait_ms: wait_ms(env_or(
                "TWH_IDEMPOTENCY_WAIT_MS",
                d.idempotency_wait_ms,
            )?)?,
            admin_token: std::env::var("TWH_ADMIN_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
            orders: OrdersConfig {
                reservation_sweep_ms: env_or(
                    "TWH_RESERVATION_SWEEP_MS",
                    d.orders.reservation_sweep_ms,
                )?
                .max(10),
            },
            redis_url: std::env::var("REDIS_URL")
                .ok()
                .filter(|u| !u.trim().is_empty()),
            events: EventsConfig {
                relay_poll_ms: env_or("TWH_RELAY_POLL_MS", d.events.relay_poll_ms)?.max(10),
                subscriber_buffer: env_or("TWH_SUBSCRIBER_BUFFER", d.events.subscriber_buffer)?
                    .max(1),
                ws_max_connections_per_tenant: env_or(
                    "TWH_WS_MAX_CONNECTIONS_PER_TENANT",
                    d.events.ws_max_connections_per_tenant,
                )?,
                ws_max_subscriptions_per_connection: env_or(
                    "TWH_WS_MAX_SUBSCRIPTIONS_PER_CONNECTION",
                    d.events.ws_max_subscriptions_per_connection,
                )?,
                ws_ping_secs: env_or("TWH_WS_PING_SECS", d.events.ws_ping_secs)?.max(1),
                ws_init_timeout_ms: env_or("TWH_WS_INIT_TIMEOUT_MS", d.events.ws_init_timeout_ms)?,
            },
            webhooks: WebhookConfig {
                allow_private: env_or(
                    "TWH_WEBHOOK_ALLOW_PRIVATE_TARGETS",
                    d.webhooks.allow_private,
                )?,
                retry_schedule: match std::env::var("TWH_WEBHOOK_RETRY_SCHEDULE") {
                    Ok(raw) if !raw.trim().is_empty() => {
                        parse_schedule(&raw).map_err(|reason| StartupError::InvalidSetting {
                            name: "TWH_WEBHOOK_RETRY_SCHEDULE",
                            value: raw.clone(),
                            reason,
                            default: DEFAULT_RETRY_SCHEDULE.into(),
                        })?
                    }
                    _ => d.webhooks.retry_schedule,
                },
                timeout_ms: env_or("TWH_WEBHOOK_TIMEOUT_MS", d.webhooks.timeout_ms)?.max(1),
                disable_after_secs: env_or(
                    "TWH_WEBHOOK_DISABLE_AFTER_SECS",
                    d.webhooks.disable_after_secs,
                )?,
                endpoint_concurrency: env_or(
                    "TWH_WEBHOOK_ENDPOINT_CONCURRENCY",
                    d.webhooks.endpoint_concurrency,
                )?
                .clamp(1, 256),
                lease_secs: env_or("TWH_WEBHOOK_LEASE_SECS", d.webhooks.lease_secs)?.max(1),
                dispatch_poll_ms: env_or("TWH_WEBHOOK_POLL_MS", d.webhooks.dispatch_poll_ms)?
                    .max(10),
            },
            limits: LimitsConfig {
                enforce: switch("TWH_RATE_LIMITS", d.limits.enforce)?,
                flush_ms: env_or("TWH_USAGE_FLUSH_MS", d.limits.flush_ms)?.max(10),
                redis_timeout_ms: env_or("TWH_REDIS_TIMEOUT_MS", d.limits.redis_timeout_ms)?.max(1),
            },
            jwt_keys: match std::env::var("TWH_JWT_KEYS") {
                Ok(raw) if !raw.trim().is_empty() => {
                    Some(crate::auth::jwt::parse_keys(&raw).map_err(|reason| {
                        StartupError::InvalidSetting {
                            name: "TWH_JWT_KEYS",
                            reason,
                            // The setting holds secrets: never echo it.
                            value: "(hidden)".into(),
                            default: "a key made up per process".into(),
                        }
                    })?)
                }
                _ => None,
            },
            artifacts: ArtifactsConfig {
                store_url: std::env::var("TWH_OBJECT_STORE_URL")
                    .ok()
                    .filter(|u| !u.trim().is_empty()),
                local_dir: std::path::PathBuf::from(env_or("TWH_DATA_DIR", "data".to_owned())?)
                    .join("artifacts"),
                max_upload_bytes: env_or("TWH_ARTIFACT_MAX_BYTES", d.artifacts.max_upload_bytes)?
                    .max(1),
                retention_days: env_or("TWH_ARTIFACT_RETENTION_DAYS", d.artifacts.retention_days)?
                    .clamp(1, 3650),
            },
            jobs: JobsConfig {
                workers: env_or("TWH_JOB_WORKERS", d.jobs.workers)?.min(64),
                lease_secs: env_or("TWH_JOB_LEASE_SECS", d.jobs.lease_secs)?.max(1),
                poll_ms: env_or("TWH_JOB_POLL_MS", d.jobs.poll_ms)?.max(10),
                batch_rows: env_or("TWH_JOB_BATCH_ROWS", d.jobs.batch_rows)?
                    .clamp(1, crate::ledger::write::MAX_IMPORT_CHANGES),
                max_attempts: env_or("TWH_JOB_MAX_ATTEMPTS", d.jobs.max_attempts)?.clamp(1, 100),
                reconcile_schedule: match std::env::var("TWH_RECONCILE_SCHEDULE") {
                    Ok(raw) if !raw.trim().is_empty() => {
                        ReconcileSchedule::parse(&raw).map_err(|reason| {
                            StartupError::InvalidSetting {
                                name: "TWH_RECONCILE_SCHEDULE",
                                reason,
                                value: raw.clone(),
                                default: "daily@02:00".into(),
                            }
                        })?
                    }
                    _ => d.jobs.reconcile_schedule,
                },
            },
            search: SearchConfig {
                meilisearch_url: std::env::var("MEILISEARCH_URL")
                    .ok()
                    .filter(|u| !u.trim().is_empty()),
                meilisearch_api_key: std::env::var("MEILISEARCH_API_KEY")
                    .ok()
                    .filter(|k| !k.is_empty()),
                index_prefix: env_or("TWH_SEARCH_INDEX_PREFIX", d.search.index_prefix)?,
                poll_ms: env_or("TWH_SEARCH_POLL_MS", d.search.poll_ms)?.max(10),
            },
        })
    }

    /// A configuration for tests and embedding: the defaults, the given database, an
    /// ephemeral port.
    pub fn for_database(url: impl Into<String>) -> Self {
        let mut config = Self::default();
        config.http.bind = ([127, 0, 0, 1], 0).into();
        config.http.public_url = "http://127.0.0.1".into();
        config.database.url = url.into();
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_setting_names_its_default() {
        let err = StartupError::InvalidSetting {
            name: "TWH_BIND",
            value: "nonsense".into(),
            reason: "invalid socket address syntax".into(),
            default: "127.0.0.1:8080".into(),
        };
        assert_eq!(
            err.to_string(),
            "TWH_BIND=\"nonsense\" is not valid: invalid socket address syntax - Hint: set it \
             like the default, 127.0.0.1:8080, or unset it"
        );
    }

    #[test]
    fn retry_schedules_parse_and_are_bounded() {
        assert_eq!(parse_schedule("0, 0.5,5").unwrap(), vec![0.0, 0.5, 5.0]);
        assert_eq!(parse_schedule(DEFAULT_RETRY_SCHEDULE).unwrap().len(), 8);
        assert!(parse_schedule("").is_err());
        assert!(parse_schedule("1,-2").is_err());
        assert!(parse_schedule("1,x").is_err());
        assert!(parse_schedule("NaN").is_err());
    }

    #[test]
    fn the_idempotency_wait_is_bounded_as_postgres_needs() {
        assert!(wait_ms(0).is_err(), "0 would mean waiting forever");
        assert_eq!(wait_ms(1).unwrap(), 1);
        assert_eq!(wait_ms(i32::MAX as u64).unwrap(), i32::MAX as u64);
        assert!(wait_ms(i32::MAX as u64 + 1).is_err());
    }
}
