//! Start-up failures through the real `twh` binary: each names its cause, the value at fault
//! and the setting to change, on one line, within seconds, and never shows a password.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Well within the 34 s the pool used to wait before saying only "pool timed out".
const PROMPT: Duration = Duration::from_secs(10);
/// After this the child is killed, so a regression fails the test instead of hanging it.
const GIVE_UP: Duration = Duration::from_secs(60);
const PASSWORD: &str = "hunter2-secret";

/// Every command that connects to the database, as arguments to `twh`.
const CONNECTING: [&[&str]; 4] = [
    &["serve"],
    &["migrate"],
    &["tenant", "create", "--name", "Startup"],
    &["reconcile"],
];

struct Outcome {
    code: Option<i32>,
    stderr: String,
    elapsed: Duration,
}

/// A scratch folder for one test: the working directory of the child (so nothing lands in
/// the repository) and a place for SQLite files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("twh-startup-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// Runs `twh args` with exactly the given settings (none inherited from the test's own
/// environment) and waits at most [`GIVE_UP`].
fn twh(args: &[&str], env: &[(&str, &str)], dir: &PathBuf) -> Outcome {
    let mut command = Command::new(env!("CARGO_BIN_EXE_twh"));
    command
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (name, _) in std::env::vars() {
        if name.starts_with("TWH_") || name == "DATABASE_URL" || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    // Port 0: a serve that gets past the database never collides with anything.
    command.env("TWH_BIND", "127.0.0.1:0");
    command.envs(env.iter().copied());
    let started = Instant::now();
    let mut child = command.spawn().expect("start twh");
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).ok();
        text
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for twh") {
            break status;
        }
        if started.elapsed() > GIVE_UP {
            child.kill().ok();
            break child.wait().expect("wait for twh");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    Outcome {
        code: status.code(),
        stderr: reader.join().expect("stderr reader"),
        elapsed,
    }
}

/// The checks every start-up failure must pass: exit code 2, promptly, one `error:` line that
/// names the cause once, the value and the setting, with a hint and no password.
fn assert_names(outcome: &Outcome, cause: &str, value: &str, setting: &str) {
    let stderr = &outcome.stderr;
    assert_eq!(outcome.code, Some(2), "{stderr}");
    assert!(
        outcome.elapsed < PROMPT,
        "took {:?} to fail: {stderr}",
        outcome.elapsed
    );
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    let line = errors[0];
    let lower = line.to_lowercase();
    assert_eq!(
        lower.matches(&cause.to_lowercase()).count(),
        1,
        "the cause {cause:?} once: {line}"
    );
    assert!(line.contains(value), "the value {value:?}: {line}");
    assert!(line.contains(setting), "the setting {setting}: {line}");
    assert!(line.contains(" - Hint: "), "what to do: {line}");
    assert!(!stderr.contains(PASSWORD), "a password shown: {stderr}");
    assert!(!line.contains("at line"), "driver internals: {line}");
}

/// A local port nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[test]
fn an_unreachable_postgres_is_named_at_once_by_every_command() {
    let dir = scratch("refused");
    let port = closed_port();
    let url = format!("postgres://postgres:{PASSWORD}@127.0.0.1:{port}/twh");
    let shown = format!("postgres://postgres:***@127.0.0.1:{port}/twh");
    for args in CONNECTING {
        let outcome = twh(args, &[("DATABASE_URL", &url)], &dir);
        assert_names(&outcome, "connection refused", &shown, "DATABASE_URL");
        assert!(
            outcome.stderr.contains("cannot reach the database"),
            "{args:?}: {}",
            outcome.stderr
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_missing_postgres_database_is_named() {
    let Ok(admin) = std::env::var("TWH_TEST_DATABASE_URL") else {
        eprintln!("skipped: needs TWH_TEST_DATABASE_URL (a Postgres server)");
        return;
    };
    if !admin.starts_with("postgres://") {
        eprintln!("skipped: TWH_TEST_DATABASE_URL is not a Postgres URL");
        return;
    }
    let dir = scratch("missing");
    let name = format!("twh_missing_{}", std::process::id());
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    // A password in the URL (trust authentication ignores it) must not be shown.
    let base = match base.split_once('@') {
        Some((user, host)) if !user["postgres://".len()..].contains(':') => {
            format!("{user}:{PASSWORD}@{host}")
        }
        _ => base.to_owned(),
    };
    let url = format!("{base}/{name}");
    for args in CONNECTING {
        let outcome = twh(args, &[("DATABASE_URL", &url)], &dir);
        assert_names(
            &outcome,
            "does not exist",
            &format!("\"{name}\""),
            "DATABASE_URL",
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_unusable_sqlite_path_is_named() {
    let dir = scratch("sqlite");
    // A file where the database's folder should be: no folder can be made there, not even by
    // root (who could write anywhere else).
    let blocker = dir.join("not-a-folder");
    std::fs::write(&blocker, b"").expect("a plain file");
    let url = format!("sqlite://{}/twh.db?mode=rwc", blocker.display());
    for args in CONNECTING {
        let outcome = twh(args, &[("DATABASE_URL", &url)], &dir);
        assert_names(&outcome, "not a folder", &url, "DATABASE_URL");
    }

    // A database file that does not exist, without ?mode=rwc to create it.
    let url = format!("sqlite://{}/absent.db", dir.display());
    let outcome = twh(&["migrate"], &[("DATABASE_URL", &url)], &dir);
    assert_names(&outcome, "no such file", &url, "mode=rwc");

    // A folder where the database file should be.
    let url = format!("sqlite://{}?mode=rwc", dir.display());
    let outcome = twh(&["migrate"], &[("DATABASE_URL", &url)], &dir);
    assert_names(&outcome, "is a folder", &url, "DATABASE_URL");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_malformed_database_url_is_named() {
    let dir = scratch("malformed");
    let cases = [
        (
            format!("mysql://root:{PASSWORD}@127.0.0.1/twh"),
            "mysql://root:***@127.0.0.1/twh",
            "mysql is not supported",
        ),
        ("garbage".to_owned(), "garbage", "not a database URL"),
        (
            format!("postgres://postgres:{PASSWORD}@127.0.0.1:port/twh"),
            "postgres://postgres:***@127.0.0.1:port/twh",
            "invalid port number",
        ),
    ];
    for (url, shown, cause) in &cases {
        for args in CONNECTING {
            let outcome = twh(args, &[("DATABASE_URL", url)], &dir);
            assert_names(&outcome, cause, shown, "DATABASE_URL");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_malformed_bind_address_is_named() {
    let dir = scratch("bind-malformed");
    let outcome = twh(&["serve"], &[("TWH_BIND", "localhost-8080")], &dir);
    assert_names(
        &outcome,
        "invalid socket address syntax",
        "\"localhost-8080\"",
        "TWH_BIND",
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_busy_port_is_named_before_the_database_is_touched() {
    let dir = scratch("bind-busy");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let db = dir.join("twh.db");
    let url = format!("sqlite://{}?mode=rwc", db.display());
    let outcome = twh(
        &["serve"],
        &[("TWH_BIND", &addr), ("DATABASE_URL", &url)],
        &dir,
    );
    assert_names(&outcome, "already in use", &addr, "TWH_BIND");
    // Binding comes first: a sandbox tenant created before a failed bind would have its key,
    // shown once, never shown at all.
    assert!(!db.exists(), "the database was created before binding");
    drop(taken);
    std::fs::remove_dir_all(&dir).ok();
}
