//! The Warehouse Hub server: a ledger-first inventory API (GraphQL on axum, SeaORM over
//! Postgres or SQLite). `twh` (src/main.rs) is the command line on top of this library.

pub mod app;
pub mod artifacts;
pub mod audit;
pub mod auth;
pub mod catalog;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod graphql;
pub mod http;
pub mod idempotency;
pub mod ids;
pub mod jobs;
pub mod ledger;
pub mod observability;
pub mod orders;
pub mod search;
pub mod server;
pub mod startup;
pub mod tenancy;
pub mod webhooks;
