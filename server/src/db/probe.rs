//! The first connection at start-up: DATABASE_URL parsed, one connection opened within a few
//! seconds, and a failure turned into a [`StartupError`] that names its cause.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sea_orm::sqlx::postgres::PgConnectOptions;
use sea_orm::sqlx::sqlite::SqliteConnectOptions;
use sea_orm::sqlx::{self, ConnectOptions, Connection};

use crate::startup::{StartupError, io_reason};

/// How long the first connection may take. The pool would retry a refused connection for its
/// whole acquire timeout (30 s) and then report only that it timed out.
pub const FIRST_CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

const URL_FORMS: &str = "use postgres://USER:PASSWORD@HOST:PORT/DATABASE or sqlite://PATH?mode=rwc";

/// The database DATABASE_URL names, parsed by the driver that will connect to it.
pub enum Target {
    Postgres(PgConnectOptions),
    Sqlite(SqliteConnectOptions),
}

/// DATABASE_URL as it was given, and as it may be shown.
pub struct Url<'a> {
    pub raw: &'a str,
    pub shown: String,
}

impl Target {
    pub fn parse(url: &Url) -> Result<Self, StartupError> {
        let invalid = |reason: String, hint| StartupError::InvalidDatabaseUrl {
            url: url.shown.clone(),
            reason,
            hint,
        };
        let percent_hint = "write it as postgres://USER:PASSWORD@HOST:PORT/DATABASE, with special characters in the password percent-encoded";
        if url.raw.starts_with("postgres://") {
            PgConnectOptions::from_str(url.raw)
                .map(Self::Postgres)
                .map_err(|err| invalid(parse_reason(&err), percent_hint))
        } else if url.raw.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url.raw)
                .map(Self::Sqlite)
                .map_err(|err| invalid(parse_reason(&err), URL_FORMS))
        } else {
            match url.raw.split_once("://") {
                Some(("postgresql", _)) => Err(invalid(
                    "the scheme is postgresql".to_owned(),
                    "write postgres:// instead of postgresql://",
                )),
                Some((scheme, _)) if !scheme.is_empty() => Err(invalid(
                    format!("{scheme} is not supported, only Postgres and SQLite"),
                    URL_FORMS,
                )),
                _ => Err(invalid("not a database URL".to_owned(), URL_FORMS)),
            }
        }
    }

    /// Opens one connection and closes it again, or says why it could not.
    pub async fn check(&self, url: &Url<'_>) -> Result<(), StartupError> {
        let opened = match self {
            Self::Postgres(options) => {
                tokio::time::timeout(FIRST_CONNECTION_TIMEOUT, async {
                    options.connect().await?.close().await
                })
                .await
            }
            Self::Sqlite(options) => {
                let options = super::sqlite_tuning(options.clone());
                tokio::time::timeout(FIRST_CONNECTION_TIMEOUT, async {
                    options.connect().await?.close().await
                })
                .await
            }
        };
        match opened {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(self.failure(url, &err)),
            Err(_elapsed) => Err(self.timed_out(url)),
        }
    }

    fn timed_out(&self, url: &Url) -> StartupError {
        let reason = format!(
            "no connection within {} s",
            FIRST_CONNECTION_TIMEOUT.as_secs()
        );
        match self {
            Self::Postgres(_) => StartupError::DatabaseUnreachable {
                url: url.shown.clone(),
                reason,
                hint: "check the host and port in DATABASE_URL, and that Postgres answers there",
            },
            Self::Sqlite(_) => StartupError::SqliteUnusable {
                url: url.shown.clone(),
                reason,
                hint: "check that its file system answers, or set DATABASE_URL to a local file"
                    .to_owned(),
            },
        }
    }

    /// What a failed connection means, in words and with what to do next.
    pub fn failure(&self, url: &Url, err: &sqlx::Error) -> StartupError {
        match self {
            Self::Postgres(options) => postgres_failure(options, url, err),
            Self::Sqlite(options) => sqlite_failure(options.get_filename(), url, err),
        }
    }
}

fn postgres_failure(options: &PgConnectOptions, url: &Url, err: &sqlx::Error) -> StartupError {
    let shown = url.shown.clone();
    match err {
        sqlx::Error::Io(io) => StartupError::DatabaseUnreachable {
            url: shown,
            reason: io_reason(io),
            hint: if io.kind() == std::io::ErrorKind::ConnectionRefused {
                "start Postgres or set DATABASE_URL"
            } else {
                "check the host and port in DATABASE_URL, and that Postgres answers there"
            },
        },
        sqlx::Error::PoolTimedOut => StartupError::DatabaseUnreachable {
            url: shown,
            reason: "no connection became free in time".to_owned(),
            hint: "check that Postgres is up, or set DATABASE_URL",
        },
        sqlx::Error::Tls(tls) => StartupError::DatabaseRefused {
            url: shown,
            reason: format!("TLS failed: {tls}"),
            hint: "check sslmode in DATABASE_URL and the server's certificate",
        },
        sqlx::Error::Database(db) => {
            let reason = db.message().to_owned();
            match db.code().as_deref() {
                // invalid_catalog_name
                Some("3D000") => {
                    let name = options
                        .get_database()
                        .unwrap_or(options.get_username())
                        .to_owned();
                    let create = format!(
                        "createdb -h {} -p {} -U {} {name}",
                        options.get_host(),
                        options.get_port(),
                        options.get_username()
                    );
                    StartupError::DatabaseMissing {
                        url: shown,
                        name,
                        create,
                    }
                }
                // invalid_password, invalid_authorization_specification
                Some("28P01" | "28000") => StartupError::LoginRefused {
                    url: shown,
                    user: options.get_username().to_owned(),
                    reason,
                },
                // cannot_connect_now: starting up, shutting down, in recovery
                Some("57P03") => StartupError::DatabaseUnreachable {
                    url: shown,
                    reason,
                    hint: "wait until Postgres has started, then try again",
                },
                // too_many_connections
                Some("53300") => StartupError::DatabaseRefused {
                    url: shown,
                    reason,
                    hint: "close idle connections or raise max_connections in Postgres, or lower TWH_DB_POOL_SIZE",
                },
                _ => StartupError::DatabaseRefused {
                    url: shown,
                    reason,
                    hint: "check DATABASE_URL and the Postgres log",
                },
            }
        }
        other => StartupError::DatabaseRefused {
            url: shown,
            reason: other.to_string(),
            hint: "check DATABASE_URL and the Postgres log",
        },
    }
}

fn sqlite_failure(path: &Path, url: &Url, err: &sqlx::Error) -> StartupError {
    let unusable = |reason: String, hint: String| StartupError::SqliteUnusable {
        url: url.shown.clone(),
        reason,
        hint,
    };
    if path.is_dir() {
        return unusable(
            format!("{} is a folder", path.display()),
            format!(
                "name a file in it in DATABASE_URL, e.g. sqlite://{}/twh.db?mode=rwc",
                path.display()
            ),
        );
    }
    let creates = url.raw.contains("mode=rwc");
    if !path.exists() && !creates {
        return unusable(
            format!("no such file: {}", path.display()),
            "add ?mode=rwc to DATABASE_URL to create it, or correct the path".to_owned(),
        );
    }
    let reason = match err {
        sqlx::Error::Database(db) => db.message().to_owned(),
        sqlx::Error::Io(io) => io_reason(io),
        other => other.to_string(),
    };
    unusable(
        reason,
        "check that the file and its folder are writable, or set DATABASE_URL to another path"
            .to_owned(),
    )
}

/// A folder for the SQLite file could not be made.
pub fn folder_failure(dir: &Path, url: &Url, err: &std::io::Error) -> StartupError {
    let reason = if dir.exists() && !dir.is_dir() {
        format!("{} is not a folder", dir.display())
    } else {
        format!(
            "cannot create the folder {}: {}",
            dir.display(),
            io_reason(err)
        )
    };
    StartupError::SqliteUnusable {
        url: url.shown.clone(),
        reason,
        hint: "set DATABASE_URL to a path in a folder you can write".to_owned(),
    }
}

/// The driver's reason a URL does not parse, without its "error with configuration" prefix.
fn parse_reason(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Configuration(inner) => inner.to_string(),
        other => other.to_string(),
    }
}
