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
                max_connections: env_or("TWH_DB_POOL_SIZE", d.database.max_connections)?,
                ping_after_idle_ms: env_or(
                    "TWH_DB_PING_AFTER_IDLE_MS",
                    d.database.ping_after_idle_ms,
                )?,
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
    fn the_idempotency_wait_is_bounded_as_postgres_needs() {
        assert!(wait_ms(0).is_err(), "0 would mean waiting forever");
        assert_eq!(wait_ms(1).unwrap(), 1);
        assert_eq!(wait_ms(i32::MAX as u64).unwrap(), i32::MAX as u64);
        assert!(wait_ms(i32::MAX as u64 + 1).is_err());
    }
}
