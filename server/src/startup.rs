//! Why `twh` could not start (a setting, the database, the listening address): each failure
//! names its cause, the value at fault and what to change, on one `error: … - Hint: …` line.

use std::io;
use std::net::SocketAddr;

/// A failure before serving. Database URLs in it are always redacted ([`crate::db::redact`]).
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(
        "{name}={value:?} is not valid: {reason} - Hint: set it like the default, {default}, or unset it"
    )]
    InvalidSetting {
        name: &'static str,
        value: String,
        reason: String,
        default: String,
    },

    #[error("DATABASE_URL={url:?} is not valid: {reason} - Hint: {hint}")]
    InvalidDatabaseUrl {
        url: String,
        reason: String,
        hint: &'static str,
    },

    /// Nothing answered: the server is down, elsewhere, or not reachable from here.
    #[error("cannot reach the database at {url}: {reason} - Hint: {hint}")]
    DatabaseUnreachable {
        url: String,
        reason: String,
        hint: &'static str,
    },

    #[error(
        "the database {name:?} does not exist at {url} - Hint: create it ({create}) or set DATABASE_URL to one that exists"
    )]
    DatabaseMissing {
        url: String,
        name: String,
        create: String,
    },

    #[error(
        "the database at {url} refused user {user:?}: {reason} - Hint: check the user and password in DATABASE_URL"
    )]
    LoginRefused {
        url: String,
        user: String,
        reason: String,
    },

    /// The server answered but would not give a connection, for another reason.
    #[error("cannot connect to the database at {url}: {reason} - Hint: {hint}")]
    DatabaseRefused {
        url: String,
        reason: String,
        hint: &'static str,
    },

    #[error("cannot open the SQLite database at {url}: {reason} - Hint: {hint}")]
    SqliteUnusable {
        url: String,
        reason: String,
        hint: String,
    },

    #[error("cannot listen on {addr}: {reason} - Hint: {hint}")]
    Bind {
        addr: SocketAddr,
        reason: String,
        hint: String,
    },
}

impl StartupError {
    /// Binding `addr` failed: say which address and how to pick another.
    pub fn bind(addr: SocketAddr, err: &io::Error) -> Self {
        let hint = match err.kind() {
            io::ErrorKind::AddrInUse => format!(
                "stop what listens there or set TWH_BIND to a free address ({}:0 picks a free port)",
                addr.ip()
            ),
            io::ErrorKind::AddrNotAvailable => format!(
                "{} is not an address of this machine: set TWH_BIND to one that is, e.g. 127.0.0.1:{} or 0.0.0.0:{}",
                addr.ip(),
                addr.port(),
                addr.port()
            ),
            io::ErrorKind::PermissionDenied => format!(
                "ports below 1024 need privileges: set TWH_BIND to a higher port, e.g. {}:8080",
                addr.ip()
            ),
            _ => "set TWH_BIND to another address".to_owned(),
        };
        Self::Bind {
            addr,
            reason: io_reason(err),
            hint,
        }
    }
}

/// An I/O failure in a few plain words, without the `(os error N)` suffix.
pub fn io_reason(err: &io::Error) -> String {
    use io::ErrorKind::*;
    let plain = match err.kind() {
        ConnectionRefused => "connection refused",
        ConnectionReset => "connection reset",
        AddrInUse => "the address is already in use",
        AddrNotAvailable => "the address is not available",
        PermissionDenied => "permission denied",
        TimedOut => "timed out",
        HostUnreachable => "no route to host",
        NetworkUnreachable => "the network is unreachable",
        NotADirectory => "not a folder",
        ReadOnlyFilesystem => "the file system is read-only",
        _ => {
            let text = err.to_string();
            let text = match text.find(" (os error") {
                Some(at) => text[..at].to_owned(),
                None => text,
            };
            let mut chars = text.chars();
            return match chars.next() {
                Some(first) => first.to_lowercase().chain(chars).collect(),
                None => text,
            };
        }
    };
    plain.to_owned()
}

/// An error and its causes on one line. A cause whose text is already shown is left out:
/// driver errors repeat their source in their own message.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(text.as_str()) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_reasons_are_plain() {
        let refused = io::Error::from_raw_os_error(111);
        assert_eq!(io_reason(&refused), "connection refused");
        let other = io::Error::other("Something odd (os error 1234)");
        assert_eq!(io_reason(&other), "something odd");
    }

    #[test]
    fn repeated_causes_are_shown_once() {
        let err = anyhow::Error::new(io::Error::other("database \"x\" does not exist"))
            .context("Connection Error: database \"x\" does not exist")
            .context("running migrations");
        assert_eq!(
            one_line(&err),
            "running migrations: Connection Error: database \"x\" does not exist"
        );
    }

    #[test]
    fn a_busy_address_names_the_setting() {
        let addr: SocketAddr = ([127, 0, 0, 1], 8080).into();
        let message = StartupError::bind(addr, &io::Error::from(io::ErrorKind::AddrInUse));
        assert_eq!(
            message.to_string(),
            "cannot listen on 127.0.0.1:8080: the address is already in use - Hint: stop what \
             listens there or set TWH_BIND to a free address (127.0.0.1:0 picks a free port)"
        );
    }
}
