//! Database connection and migration: SQLite (embedded default) or Postgres.
//! SQLite gets WAL, a busy timeout and immediate write transactions; Postgres a sized pool.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use sea_orm::sea_query::{InsertStatement, PostgresQueryBuilder, UpdateStatement};
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, RuntimeErr,
    Statement,
};
use twh_migration::{Migrator, MigratorTrait};

use crate::config::DatabaseConfig;
use crate::startup::StartupError;

pub mod group;
pub mod held;
mod probe;

/// Opens the pool after one connection has been opened on its own: start-up fails within
/// [`probe::FIRST_CONNECTION_TIMEOUT`], naming the cause, while the running pool keeps its patient
/// acquire timeout for outages.
pub async fn connect(config: &DatabaseConfig) -> Result<DatabaseConnection, StartupError> {
    let url = probe::Url {
        raw: config.url.as_str(),
        shown: redact(&config.url),
    };
    let target = probe::Target::parse(&url)?;
    let folder = sqlite_path(url.raw)
        .and_then(|path| std::path::Path::new(path).parent())
        .filter(|dir| !dir.as_os_str().is_empty());
    if let Some(dir) = folder {
        std::fs::create_dir_all(dir).map_err(|err| probe::folder_failure(dir, &url, &err))?;
    }
    target.check(&url).await?;
    let ping_after_idle = Duration::from_millis(config.ping_after_idle_ms);
    let mut options = ConnectOptions::new(url.raw.to_owned());
    options
        .max_connections(config.max_connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        // sqlx would ping every connection on every checkout: a round trip per request. Ping
        // only connections idle for a while, or all of them just after one was found dead.
        .test_before_acquire(false)
        .map_sqlx_postgres_before_acquire(move |conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= ping_after_idle || connections_suspect() {
                    sea_orm::sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(sqlite_tuning);
    if let Some(port) = postgres_port(url.raw) {
        options.map_sqlx_postgres_pool_opts(move |pool| {
            pool.after_connect(move |_, _| {
                Box::pin(async move {
                    nodelay::set_on_sockets_to(port);
                    Ok(())
                })
            })
        });
    }
    let db = Database::connect(options).await.map_err(|err| match err {
        DbErr::Conn(RuntimeErr::SqlxError(cause)) => target.failure(&url, &cause),
        other => StartupError::DatabaseRefused {
            url: url.shown.clone(),
            reason: other.to_string(),
            hint: "check DATABASE_URL",
        },
    })?;
    Ok(db)
}

/// The port a Postgres URL connects to (sqlx's own reading of it, `PGPORT` included).
fn postgres_port(url: &str) -> Option<u16> {
    use std::str::FromStr;
    if !url.starts_with("postgres") {
        return None;
    }
    let options = sea_orm::sqlx::postgres::PgConnectOptions::from_str(url).ok()?;
    options.get_socket().is_none().then(|| options.get_port())
}

/// Nagle's algorithm off on the pool's TCP sockets to Postgres.
///
/// sqlx 0.9.0 stopped setting `TCP_NODELAY` on its sockets (its issue #4335; fixed upstream,
/// not in a release yet). A statement bigger than a new socket's send buffer (16 KiB by
/// default on Linux), which every set-based ledger batch is, then leaves in two writes, and the
/// second waits for Postgres' delayed ACK: about 40 ms per statement, which made a 250-row
/// import batch take 200 ms instead of 40. Until a release carries the fix, each new connection
/// sets it here: the process's socket descriptors are duplicated through a pidfd (no unsafe
/// code; Linux 5.6 or later), and those connected to the database port get the option. Where
/// that is not possible the pool works as before, only slower for big statements.
pub mod nodelay {
    /// Sets `TCP_NODELAY` on every TCP socket of this process connected to `port` that lacks
    /// it; returns how many it set.
    pub fn set_on_sockets_to(port: u16) -> usize {
        imp::sockets(|ends| ends.peer == port)
            .iter()
            .filter(|socket| imp::nodelay(socket) == Some(false) && imp::set(socket))
            .count()
    }

    /// Whether the socket of this process bound to local TCP port `port` has Nagle's algorithm
    /// off; `None` when there is no such socket (or it cannot be told here). Tests ask it of
    /// the pool's connections (Postgres tells a connection its port: `inet_client_port()`).
    pub fn is_on_for_local_port(port: u16) -> Option<bool> {
        imp::sockets(|ends| ends.local == port)
            .first()
            .and_then(imp::nodelay)
    }

    /// The two ports of a TCP connection.
    #[derive(Clone, Copy, Debug)]
    pub struct Ends {
        pub local: u16,
        pub peer: u16,
    }

    #[cfg(target_os = "linux")]
    pub(crate) mod imp {
        use std::collections::HashSet;

        use rustix::fd::OwnedFd;
        use rustix::net::sockopt;
        use rustix::process::{PidfdFlags, PidfdGetfdFlags, getpid, pidfd_getfd, pidfd_open};

        use super::Ends;

        /// Duplicates of this process's TCP sockets whose ports are `wanted`: a duplicate
        /// shares the socket, so an option set on it is the socket's. The kernel's table of TCP
        /// sockets names each one's ports and inode, so only the wanted ones are duplicated: a
        /// server holding thousands of client connections does not double its descriptors (and
        /// run into its open-file limit) each time the pool opens a connection.
        pub fn sockets(wanted: impl Fn(Ends) -> bool) -> Vec<OwnedFd> {
            let inodes = inodes_of(wanted);
            if inodes.is_empty() {
                return Vec::new();
            }
            let (Ok(pidfd), Ok(entries)) = (
                pidfd_open(getpid(), PidfdFlags::empty()),
                std::fs::read_dir("/proc/self/fd"),
            ) else {
                return Vec::new();
            };
            // The descriptors are listed in full before any is duplicated: a directory read
            // while the duplicates appear in it could list (and duplicate) them too.
            let fds: Vec<i32> = entries
                .flatten()
                .filter_map(|entry| {
                    let target = std::fs::read_link(entry.path()).ok()?;
                    let inode: u64 = target
                        .to_str()?
                        .strip_prefix("socket:[")?
                        .strip_suffix(']')?
                        .parse()
                        .ok()?;
                    let fd = entry.file_name().to_str()?.parse().ok()?;
                    inodes.contains(&inode).then_some(fd)
                })
                .collect();
            fds.into_iter()
                .filter_map(|fd| pidfd_getfd(&pidfd, fd, PidfdGetfdFlags::empty()).ok())
                .collect()
        }

        /// Inodes of the TCP sockets (IPv4 and IPv6) whose ports are `wanted`.
        fn inodes_of(wanted: impl Fn(Ends) -> bool) -> HashSet<u64> {
            ["/proc/self/net/tcp", "/proc/self/net/tcp6"]
                .iter()
                .filter_map(|table| std::fs::read_to_string(table).ok())
                .flat_map(|table| {
                    table
                        .lines()
                        .skip(1)
                        .filter_map(row)
                        .filter(|(ends, _)| wanted(*ends))
                        .map(|(_, inode)| inode)
                        .collect::<Vec<_>>()
                })
                .collect()
        }

        /// One row of `/proc/net/tcp`: `sl local_address rem_address st … uid timeout inode`,
        /// addresses as hexadecimal `address:port`.
        pub(crate) fn row(line: &str) -> Option<(Ends, u64)> {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port = |address: &str| u16::from_str_radix(address.rsplit_once(':')?.1, 16).ok();
            let ends = Ends {
                local: port(fields.get(1)?)?,
                peer: port(fields.get(2)?)?,
            };
            Some((ends, fields.get(9)?.parse().ok()?))
        }

        pub fn nodelay(socket: &OwnedFd) -> Option<bool> {
            sockopt::tcp_nodelay(socket).ok()
        }

        pub fn set(socket: &OwnedFd) -> bool {
            sockopt::set_tcp_nodelay(socket, true).is_ok()
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) mod imp {
        use super::Ends;

        pub fn sockets(_wanted: impl Fn(Ends) -> bool) -> Vec<()> {
            Vec::new()
        }
        pub fn nodelay(_: &()) -> Option<bool> {
            None
        }
        pub fn set(_: &()) -> bool {
            false
        }
    }
}

/// Counts the statements this pool sends; tests read it to prove a request's statement count
/// does not grow with the size of what it returns (no N+1).
pub fn count_statements(
    db: &mut DatabaseConnection,
) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
    let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = count.clone();
    db.set_metric_callback(move |_| {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    count
}

/// WAL, a busy timeout and foreign keys: for the pool and for the first connection alike, so
/// the first one fails where the pool would.
fn sqlite_tuning(options: SqliteConnectOptions) -> SqliteConnectOptions {
    options
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(30))
        .foreign_keys(true)
}

/// Until when (milliseconds since [`epoch`]) every pooled connection is pinged before use,
/// because one of them was just found dead: whatever dropped it (a restart, a failover, an
/// administrator) most likely dropped its siblings too.
static SUSPECT_UNTIL_MS: AtomicU64 = AtomicU64::new(0);
const SUSPECT_WINDOW: Duration = Duration::from_secs(5);

fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn connections_suspect() -> bool {
    let now = epoch().elapsed().as_millis() as u64;
    now < SUSPECT_UNTIL_MS.load(Ordering::Relaxed)
}

/// Why the database is out of reach for now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outage {
    /// No connection could be opened or acquired (refused, unreachable, not accepting
    /// connections, none free within the acquire timeout).
    Unreachable,
    /// An open connection broke (a restart or failover, a terminated backend, a dropped
    /// network). Recorded: for a few seconds every checkout is pinged, so the pool sheds the
    /// other dead connections.
    ConnectionLost,
}

/// Whether a failure means the database is out of reach, rather than the statement failing.
/// A write that met it may or may not have been applied (a COMMIT's answer can be lost).
pub fn outage(err: &DbErr) -> Option<Outage> {
    use sea_orm::sqlx::Error;
    let lost = match err {
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => match e.as_ref() {
            Error::Io(_) | Error::Tls(_) | Error::WorkerCrashed => true,
            Error::Protocol(message) => message.contains("EOF") || message.contains("closed"),
            // Class 08: connection exception; 57P01..57P03: shutdown, crash, cannot connect now.
            Error::Database(db) => db
                .code()
                .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
            _ => false,
        },
        _ => false,
    };
    if lost {
        let until = (epoch().elapsed() + SUSPECT_WINDOW).as_millis() as u64;
        SUSPECT_UNTIL_MS.fetch_max(until, Ordering::Relaxed);
        return Some(Outage::ConnectionLost);
    }
    // `Conn` is what opening or acquiring a connection fails with.
    matches!(err, DbErr::ConnectionAcquire(_) | DbErr::Conn(_)).then_some(Outage::Unreachable)
}

/// [`outage`] of the first database error in a chain of causes.
pub fn outage_in(err: &anyhow::Error) -> Option<Outage> {
    err.chain()
        .filter_map(|cause| cause.downcast_ref::<DbErr>())
        .find_map(outage)
}

pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    Migrator::up(db, None).await.context("running migrations")
}

pub fn is_sqlite(db: &DatabaseConnection) -> bool {
    db.get_database_backend() == DbBackend::Sqlite
}

/// Begins a read-write transaction: `BEGIN IMMEDIATE` on SQLite (`sqlite_writer`: the caller
/// holds the process's writer lock, and a second process cannot interleave), a plain READ
/// COMMITTED one on Postgres.
pub async fn begin_write(
    db: &DatabaseConnection,
    sqlite_writer: bool,
) -> Result<sea_orm::DatabaseTransaction, DbErr> {
    use sea_orm::{SqliteTransactionMode, TransactionOptions, TransactionTrait};
    let options = TransactionOptions {
        isolation_level: None,
        // Read-write is Postgres' default; saying so would cost a round trip per write.
        access_mode: None,
        sqlite_transaction_mode: sqlite_writer.then_some(SqliteTransactionMode::Immediate),
    };
    // A connection the database dropped (restart, failover) fails at BEGIN, before anything
    // was done: take another. Each failure retires the dead connection and makes the pool
    // ping the others for a while, so a retry or two reaches a live one.
    let mut attempt = 1;
    loop {
        match db.begin_with_options(options).await {
            Ok(txn) => return Ok(txn),
            Err(err) if attempt < 3 && outage(&err) == Some(Outage::ConnectionLost) => {
                tracing::warn!(error = %err, attempt, "database connection lost at BEGIN; retrying");
                attempt += 1;
            }
            Err(err) => return Err(err),
        }
    }
}

/// Runs several INSERTs: on Postgres as one statement of data-modifying CTEs (one round trip
/// instead of one each), elsewhere one after the other. All of them or none, as ever.
pub async fn insert_all(
    db: &impl ConnectionTrait,
    statements: Vec<InsertStatement>,
) -> Result<(), DbErr> {
    insert_all_and(db, statements, None).await
}

/// [`insert_all`], with an UPDATE that rides in the same statement on Postgres.
pub async fn insert_all_and(
    db: &impl ConnectionTrait,
    statements: Vec<InsertStatement>,
    update: Option<UpdateStatement>,
) -> Result<(), DbErr> {
    let writes = update
        .map(Write::Update)
        .into_iter()
        .chain(statements.into_iter().map(Write::Insert))
        .collect();
    write_together(db, writes).await?;
    Ok(())
}

/// One INSERT or UPDATE of [`write_together`].
pub enum Write {
    Insert(InsertStatement),
    Update(UpdateStatement),
}

impl Write {
    fn build(&self) -> (String, sea_orm::sea_query::Values) {
        match self {
            Write::Insert(s) => s.build(PostgresQueryBuilder),
            Write::Update(s) => s.build(PostgresQueryBuilder),
        }
    }

    async fn execute(&self, db: &impl ConnectionTrait) -> Result<u64, DbErr> {
        Ok(match self {
            Write::Insert(s) => db.execute(s).await?,
            Write::Update(s) => db.execute(s).await?,
        }
        .rows_affected())
    }
}

/// Runs writes in order and answers how many rows the first one wrote. On Postgres they go as
/// one statement of data-modifying CTEs (one round trip instead of one each; the first one
/// returns a row per row it wrote, and the statement counts them), elsewhere one after the
/// other. All of them or none, as ever. They must not write the same rows: data-modifying CTEs
/// share one snapshot and do not see each other's changes.
pub async fn write_together(db: &impl ConnectionTrait, writes: Vec<Write>) -> Result<u64, DbErr> {
    let Some(first) = writes.first() else {
        return Ok(0);
    };
    if db.get_database_backend() != DbBackend::Postgres || writes.len() < 2 {
        let written = first.execute(db).await?;
        for write in &writes[1..] {
            write.execute(db).await?;
        }
        return Ok(written);
    }
    let mut sql = String::from("WITH ");
    let mut values = Vec::new();
    for (i, write) in writes.iter().enumerate() {
        let (mut text, params) = write.build();
        if i == 0 && !text.contains(" RETURNING ") {
            // Counted below: each row the first write changed comes back as one row.
            text.push_str(" RETURNING 1");
        }
        let text = renumber_placeholders(&text, values.len());
        values.extend(params.0);
        sql.push_str(&format!("w{i} AS ({text}), "));
    }
    sql.truncate(sql.len() - 2);
    sql.push_str(" SELECT COUNT(*) AS written FROM w0");
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            values,
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("the count of a combined write".into()))?;
    let written: i64 = row.try_get("", "written")?;
    Ok(written as u64)
}

/// Shifts `$n` placeholders by `offset` (statements built by sea-query carry no literals).
pub(crate) fn renumber_placeholders(sql: &str, offset: usize) -> String {
    if offset == 0 {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        out.push(c);
        if c == '$' {
            let mut digits = String::new();
            while let Some((_, d)) = chars.peek().filter(|(_, d)| d.is_ascii_digit()) {
                digits.push(*d);
                chars.next();
            }
            match digits.parse::<usize>() {
                Ok(n) => out.push_str(&(n + offset).to_string()),
                Err(_) => out.push_str(&digits),
            }
        }
    }
    out
}

fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// The URL without its password, for logs and error messages. Whatever precedes the last `@`
/// counts as user and password (a malformed URL may hold an unescaped `@` or `/` in the
/// password), and a `password=` parameter is hidden too.
pub fn redact(url: &str) -> String {
    let start = url.find("://").map_or(0, |scheme| scheme + 3);
    let mut shown = match url.rfind('@') {
        Some(at) if at >= start => match url[start..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..start], &url[at..]),
            None => url.to_owned(),
        },
        _ => url.to_owned(),
    };
    if let Some(query) = shown.find('?') {
        let params: Vec<String> = shown[query + 1..]
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((name, _)) if name.eq_ignore_ascii_case("password") => format!("{name}=***"),
                _ => param.to_owned(),
            })
            .collect();
        shown = format!("{}?{}", &shown[..query], params.join("&"));
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn a_row_of_the_kernels_tcp_table_gives_ports_and_inode() {
        let row = "   3: 0100007F:D431 0100007F:1538 01 00000000:00000000 02:000A3C5B 00000000   \
                   0        0 4729163 2 0000000000000000 20 4 30 10 -1";
        let (ends, inode) = nodelay::imp::row(row).expect("a row");
        assert_eq!((ends.local, ends.peer, inode), (0xD431, 5432, 4729163));
        assert!(nodelay::imp::row("  sl  local_address rem_address   st").is_none());
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn only_the_sockets_asked_for_are_duplicated() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let clients: Vec<_> = (0..20)
            .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect"))
            .collect();
        let unused = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let unused_port = unused.local_addr().expect("address").port();
        assert_eq!(nodelay::imp::sockets(|ends| ends.peer == port).len(), 20);
        assert!(nodelay::imp::sockets(|ends| ends.peer == unused_port).is_empty());
        drop(clients);
    }

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_path("sqlite://data/twh.db?mode=rwc"),
            Some("data/twh.db")
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://x@y/z"), None);
    }

    #[test]
    fn placeholders_shift() {
        assert_eq!(
            renumber_placeholders("VALUES ($1, $2, $10)", 3),
            "VALUES ($4, $5, $13)"
        );
        assert_eq!(renumber_placeholders("VALUES ($1)", 0), "VALUES ($1)");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
        assert_eq!(redact("postgres://u@h:1/db"), "postgres://u@h:1/db");
        assert_eq!(redact("postgres://u:p@ss/w@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("u:secret@h/db"), "u:***@h/db");
        assert_eq!(
            redact("postgres://h/db?sslmode=require&password=secret"),
            "postgres://h/db?sslmode=require&password=***"
        );
        assert_eq!(redact("garbage"), "garbage");
    }
}
