// Starts the built `twh` binary as a user would (`twh serve`) on a free port with a fresh data
// folder, and reads the URL and the sandbox tenant's API key from what it prints. The binary is
// `TWH_BIN` (else the debug build in `CARGO_TARGET_DIR` or the repository's `target/`, if built).

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const sdkRoot = resolve(fileURLToPath(new URL("../..", import.meta.url)));

export function binaryPath() {
  if (process.env.TWH_BIN) return process.env.TWH_BIN;
  const target = process.env.CARGO_TARGET_DIR || resolve(sdkRoot, "../../target");
  const fallback = join(target, "debug", "twh");
  if (existsSync(fallback)) return fallback;
  throw new Error("set TWH_BIN to the twh binary (e.g. TWH_BIN=/path/to/twh npm test)");
}

/**
 * Runs `twh serve` and resolves once it listens and has printed the sandbox key.
 * @returns {Promise<{url: string, apiKey: string, output: () => string, stop: () => Promise<number|null>}>}
 */
export async function startServer({ env = {}, timeoutMs = 30_000 } = {}) {
  const bin = binaryPath();
  const dataDir = mkdtempSync(join(tmpdir(), "twh-sdk-ts-"));
  const child = spawn(bin, ["serve"], {
    cwd: dataDir,
    env: {
      ...process.env,
      TWH_BIND: "127.0.0.1:0",
      DATABASE_URL: `sqlite://${dataDir}/twh.db?mode=rwc`,
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
      // The sample data is in place once the first-request hint is printed.
      if (url && apiKey && /Try your first stock change/.test(stdout)) {
        clearTimeout(timer);
        resolveReady({ url, apiKey });
      }
    });
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`could not run ${bin} (set TWH_BIN): ${err.message}`));
    });
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`twh serve exited with ${code} before it was ready:\n${stdout}\n${stderr}`));
    });
  });

  const { url, apiKey } = await ready;
  return {
    url,
    apiKey,
    output: () => stdout + stderr,
    stop: async () => {
      child.kill("SIGTERM");
      const code = await exited;
      rmSync(dataDir, { recursive: true, force: true });
      return code;
    },
  };
}
