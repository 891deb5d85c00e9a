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
 * @returns {Promise<{url: string, apiKey: string, tenantId: string, dataDir: string, databaseUrl: string, output: () => string, stop: () => Promise<number|null>}>}
 */
export async function startServer({ env = {}, timeoutMs = 30_000 } = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), "twh-e2e-"));
  const databaseUrl = env.DATABASE_URL ?? `sqlite://${dataDir}/twh.db?mode=rwc`;
  const child = spawn(binaryPath(), ["serve"], {
    cwd: dataDir,
    env: {
      ...process.env,
      TWH_BIND: "127.0.0.1:0",
      DATABASE_URL: databaseUrl,
      RUST_LOG: process.env.RUST_LOG || "warn",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (chunk) => (stderr += chunk));
  const exited = new Promise((resolveExit) => child.on("exit", (code) => resolveExit(code)));

  const ready = new Promise((resolveReady, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`twh serve did not start within ${timeoutMs} ms:\n${stdout}\n${stderr}`)),
      timeoutMs,
    );
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
      const url = /listening on (http:\/\/\S+)/.exec(stdout)?.[1];
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
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`twh serve exited with ${code} before it was ready:\n${stdout}\n${stderr}`));
    });
  });

  const { url, apiKey, tenantId } = await ready;
  return {
    url,
    apiKey,
    tenantId,
    dataDir,
    databaseUrl,
    output: () => stdout + stderr,
    stop: async () => {
      child.kill("SIGTERM");
      const code = await exited;
      rmSync(dataDir, { recursive: true, force: true });
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
