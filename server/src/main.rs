//! `twh`: the command line of The Warehouse Hub.
//! serve (default) | worker | migrate | tenant create | reconcile | export-schema

use anyhow::Context;
use clap::{Parser, Subcommand};
use twh_server::config::Config;
use twh_server::{db, graphql, http, jobs, ledger, observability, server, startup, tenancy};

/// mimalloc: the request path allocates many short-lived buffers; measured faster than the
/// system allocator in bench/ (see bench/RESULTS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "twh",
    version,
    about = "The Warehouse Hub: ledger-first inventory API"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server (the default).
    Serve,
    /// Run the background work without the HTTP API: job workers, the outbox relay and the
    /// webhook dispatcher (scale these apart from `serve`).
    Worker,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Recompute every stock level from the ledger and compare; exits 1 on any mismatch.
    Reconcile {
        /// Check one tenant only.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Search index maintenance.
    Search {
        #[command(subcommand)]
        command: SearchCommand,
    },
    /// Print the GraphQL SDL (checked in as schema.graphql).
    ExportSchema,
    /// Print the OpenAPI document as YAML (checked in as openapi.yaml).
    ExportOpenapi,
    /// Print the Postman collection (checked in as postman/twh.postman_collection.json).
    ExportPostman,
}

#[derive(Subcommand)]
enum SearchCommand {
    /// Rebuild the search index from the database without downtime (searches see the old
    /// index until the new one is complete), for every tenant or one.
    Reindex {
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant and print its id and owner API key as JSON.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "free")]
        plan: String,
        /// A sandbox tenant (its keys start with twh_test_).
        #[arg(long)]
        sandbox: bool,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    observability::init_logging();
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", startup::one_line(&err));
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    use std::process::ExitCode;
    let command = cli.command.unwrap_or(Command::Serve);
    match command {
        Command::ExportSchema => {
            print!("{}", graphql::sdl());
            return Ok(ExitCode::SUCCESS);
        }
        Command::ExportOpenapi => {
            let (_, _, document) = http::rest::contract(&graphql::bare()).await?;
            print!("{}", twh_rest::openapi::to_yaml(&document));
            return Ok(ExitCode::SUCCESS);
        }
        Command::ExportPostman => {
            let (_, _, document) = http::rest::contract(&graphql::bare()).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&twh_rest::postman::collection(&document))?
            );
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let config = Config::from_env()?;
    match command {
        Command::Serve => {
            serve(config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Worker => {
            let state = server::prepare(config).await?;
            let (stop, _) = tokio::sync::watch::channel(false);
            server::start_background(&state, &stop);
            tracing::info!(instance = %state.instance_id, "worker running");
            println!("twh worker running (jobs, outbox relay, webhooks); Ctrl-C stops it");
            server::shutdown_signal().await;
            let _ = stop.send(true);
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            let conn = db::connect(&config.database).await?;
            db::migrate(&conn).await?;
            println!("{}", serde_json::json!({"migrated": true}));
            Ok(ExitCode::SUCCESS)
        }
        Command::Tenant {
            command:
                TenantCommand::Create {
                    name,
                    plan,
                    sandbox,
                },
        } => {
            let conn = db::connect(&config.database).await?;
            db::migrate(&conn).await?;
            // The tenant and the record of who made it (the command line), together.
            let txn = sea_orm::TransactionTrait::begin(&conn).await?;
            let created = tenancy::create(&txn, &name, &plan, sandbox).await?;
            twh_server::audit::record_as(
                &txn,
                &created.tenant_id,
                "cli",
                twh_server::audit::AuditEntry {
                    action: "tenant.created",
                    target_type: "tenant",
                    target_id: &created.tenant_id,
                    request_id: None,
                    data: serde_json::json!({ "name": created.name, "plan": created.plan, "sandbox": created.sandbox }),
                },
            )
            .await?;
            txn.commit().await?;
            println!("{}", serde_json::to_string(&created)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Reconcile { tenant } => {
            let state = server::prepare(config).await?;
            let report = ledger::reconcile::run(&state.db, tenant.as_deref()).await?;
            // As the RECONCILE job does: the report kept as the tenant's artifact, an event
            // for each tenant with mismatches.
            if let Some(tenant) = tenant.as_deref()
                && let Err(err) =
                    jobs::exports::report_artifact(&state, tenant, None, "cli", &report).await
            {
                eprintln!("warning: the report was not stored as an artifact: {err:?}");
            }
            jobs::exports::announce(&state, &report).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(if report.mismatches == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Search {
            command: SearchCommand::Reindex { tenant },
        } => {
            let state = server::prepare(config).await?;
            let started = std::time::Instant::now();
            let documents = twh_server::search::indexer::reindex(&state, tenant.as_deref()).await?;
            println!(
                "{}",
                serde_json::json!({
                    "engine": state.search.engine_name(),
                    "tenant": tenant,
                    "documents": documents,
                    "seconds": started.elapsed().as_secs_f64(),
                })
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::ExportSchema | Command::ExportOpenapi | Command::ExportPostman => {
            unreachable!("handled above")
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // A public URL derived from TWH_BIND is replaced by the address actually bound (port 0
    // means any free port); one set in TWH_PUBLIC_URL is printed as it is.
    let derived_url = config.http.public_url == format!("http://{}", config.http.bind);
    let mut public_url = config.http.public_url.clone();
    // The address first: a sandbox tenant created before a failed bind would never have its
    // key (shown once) shown.
    let listener = server::bind(config.http.bind).await?;
    let state = server::prepare(config).await?;
    let sandbox = tenancy::sandbox::ensure(&state)
        .await
        .context("creating the sandbox tenant")?;
    let running = server::spawn_on(listener, state).await?;
    if derived_url {
        public_url = format!("http://{}", running.addr);
    }
    tracing::info!(http.addr = %running.addr, "listening");
    println!("The Warehouse Hub is listening on {public_url}");
    println!("  GraphQL:  {public_url}/graphql   (open it in a browser for GraphiQL)");
    println!("  Health:   {public_url}/healthz   Metrics: {public_url}/metrics");
    if let Some(sandbox) = sandbox {
        println!();
        println!("Created a sandbox tenant with sample items, locations and stock.");
        println!("  Tenant:   {}", sandbox.tenant_id);
        println!("  API key:  {}   (shown once; keep it)", sandbox.api_key);
        println!();
        println!("Try your first stock change:");
        println!(
            "  curl -s {public_url}/graphql -H 'Authorization: Bearer {}' -H 'Content-Type: application/json' \\\n    -d '{{\"query\":\"mutation {{ adjustStock(input: {{reason: RECEIVED, changes: [{{sku: \\\"MUG-12OZ\\\", locationCode: \\\"WH-MAIN\\\", delta: 5}}]}}) {{ movements {{ sku delta quantityAfterChange sequence }} userErrors {{ code message }} }} }}\"}}'",
            sandbox.api_key
        );
    }
    server::shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    running.shutdown().await?;
    Ok(())
}
