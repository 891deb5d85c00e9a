// Starts the built `twh` binary as a user would (`twh serve`, embedded defaults) on a free port
// with a fresh data folder, and reads the URL and the sandbox API key from what it prints.

import { execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));

/** The `twh` binary: `TWH_BIN`, else the debug build in `CARGO_TARGET_DIR` or `target/`. */
export function binaryPath() {
  if (process.env.TWH_BIN) return process.env.TWH_BIN;
  const target = process.env.CARGO_TARGET_DIR || resolve(here, "../../target");
  return join(target, "debug", "twh");
}

/**
 * Runs `twh serve` and resolves once it listens and has printed the sandbox tenant's key.
 * `dataDir` and `databaseUrl` let a test run other `twh` commands (`tenant create`) on the same data.
 *
 * Options, all optional:
 * - `env`: extra environment for the server (`env.DATABASE_URL` is honoured as before). Rate
 *   limits are off (`TWH_RATE_LIMITS=off`) unless `env` turns them on.
 * - `databaseUrl`: the database to serve (e.g. a Postgres URL shared by several servers); by
 *   default a fresh SQLite file in the data folder.
 * - `dataDir`: the folder to run in (also the default `cwd`); by default a fresh temporary folder.
 *   A folder given here is left in place by `stop()`; a temporary one is removed.
 * - `cwd`: the working directory, when it should differ from `dataDir`.
 * - `sandbox`: `true` (default) waits for the sandbox tenant's key, as on an empty database;
 *   `false` resolves as soon as the server listens (a database that already has tenants prints
 *   no key), and `apiKey`/`tenantId` are then undefined.
 * @returns {Promise<{url: string, apiKey: string|undefined, tenantId: string|undefined, dataDir: string,
 *   databaseUrl: string, child: import("node:child_process").ChildProcess,
 *   exited: Promise<{code: number|null, signal: string|null}>, output: () => string, stdout: () => string,
 *   stderr: () => string, kill: (signal?: string) => Promise<{code: number|null, signal: string|null}>,
 *   stop: () => Promise<number|null>}>}
 */
export async function startServer({
  env = {},
  timeoutMs = 30_000,
  databaseUrl: givenDatabaseUrl,
  dataDir: givenDataDir,
  cwd,
  sandbox = true,
} = {}) {
  const ownsDataDir = givenDataDir === undefined;
  const dataDir = givenDataDir ?? mkdtempSync(join(tmpdir(), "twh-e2e-"));
  const databaseUrl = givenDatabaseUrl ?? env.DATABASE_URL ?? `sqlite://${dataDir}/twh.db?mode=rwc`;
  const child = spawn(binaryPath(), ["serve"], {
    cwd: cwd ?? dataDir,
    env: {
      ...process.env,
      TWH_BIND: "127.0.0.1:0",
      RUST_LOG: process.env.RUST_LOG || "warn",
      // Suites send bursts past the sandbox's Free plan; the limits suite turns them back on.
      TWH_RATE_LIMITS: "off",
      // No scheduled reconciliation jobs in the middle of a suite's event log.
      TWH_RECONCILE_SCHEDULE: "off",
      ...env,
      DATABASE_URL: databaseUrl,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (chunk) => (stderr += chunk));
  const exitedWith = new Promise((resolveExit) =>
    child.on("exit", (code, signal) => resolveExit({ code, signal })),
  );
  const exited = exitedWith.then(({ code }) => code);

  const ready = new Promise((resolveReady, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`twh serve did not start within ${timeoutMs} ms:\n${stdout}\n${stderr}`)),
      timeoutMs,
    );
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
      // The URL counts once its line is complete (a chunk may end inside it).
      const url = /listening on (http:\/\/\S+)\s/.exec(stdout)?.[1];
      if (!sandbox) {
        if (url) {
          clearTimeout(timer);
          resolveReady({ url });
        }
        return;
      }
      const apiKey = /API key:\s+(twh_\S+)/.exec(stdout)?.[1];
      const tenantId = /Tenant:\s+(\S+)/.exec(stdout)?.[1];
      if (url && apiKey && tenantId && /Try your first stock change/.test(stdout)) {
        clearTimeout(timer);
        resolveReady({ url, apiKey, tenantId });
      }
    });
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`could not run ${binaryPath()} (set TWH_BIN or CARGO_TARGET_DIR): ${err.message}`));
    });
    exitedWith.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`twh serve exited with ${code ?? signal} before it was ready:\n${stdout}\n${stderr}`));
    });
  });

  let started;
  try {
    started = await ready;
  } catch (err) {
    child.kill("SIGKILL");
    if (ownsDataDir) rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  const { url, apiKey, tenantId } = started;
  return {
    url,
    apiKey,
    tenantId,
    dataDir,
    databaseUrl,
    /** The `twh serve` process itself. */
    child,
    /** Resolves with {code, signal} when the process has exited. */
    exited: exitedWith,
    output: () => stdout + stderr,
    stdout: () => stdout,
    stderr: () => stderr,
    /** Sends `signal` (SIGKILL by default: a crash) and waits for the exit; removes nothing. */
    kill: async (signal = "SIGKILL") => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exitedWith;
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      const code = await exited;
      if (ownsDataDir) rmSync(dataDir, { recursive: true, force: true });
      return code;
    },
  };
}

/**
 * Runs another `twh` command (`tenant create …`) on a running server's data, as an operator would.
 * @returns {Promise<string>} what it printed on stdout
 */
export function runTwh(server, args, { env = {}, timeoutMs = 30_000 } = {}) {
  return new Promise((resolveRun, reject) => {
    execFile(
      binaryPath(),
      args,
      {
        cwd: server.dataDir,
        env: { ...process.env, DATABASE_URL: server.databaseUrl, RUST_LOG: "warn", ...env },
        timeout: timeoutMs,
      },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`twh ${args.join(" ")} failed (${err.code ?? err.signal}):\n${stdout}\n${stderr}`));
        else resolveRun(stdout);
      },
    );
  });
}
