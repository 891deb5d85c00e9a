//! End-to-end tests: each test boots the real server on a loopback socket with its own
//! database (SQLite by default, Postgres when TWH_TEST_DATABASE_URL is set) and talks HTTP.

mod support;

mod access;
mod audit;
mod catalog;
mod concurrency;
mod console;
mod events;
mod group_commit;
mod idempotency;
mod isolation;
mod jobs;
mod limits;
mod operator;
mod orders;
mod protocol;
mod reads;
mod reconcile;
mod resilience;
mod rest;
mod roles;
mod schema;
mod search;
mod startup;
mod validation;
