// Runbooks are tested by running their commands: the ```sh blocks of a runbook, in order.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { binaryPath } from "./server.mjs";

/** The ```sh blocks in order, each with the `## ` heading it stands under. */
export function shellBlocks(markdown) {
  const blocks = [];
  let heading = "";
  let current = null;
  let otherFence = false;
  for (const line of markdown.split("\n")) {
    if (otherFence) {
      if (/^```\s*$/.test(line)) otherFence = false;
    } else if (current) {
      if (/^```\s*$/.test(line)) {
        blocks.push(current);
        current = null;
      } else {
        current.script += `${line}\n`;
      }
    } else if (/^```sh\s*$/.test(line)) {
      current = { heading, script: "" };
    } else if (/^```/.test(line)) {
      otherFence = true; // another kind of fence: not commands
    } else if (line.startsWith("## ")) {
      heading = line.slice(3).trim();
    }
  }
  assert.equal(current, null, "an unclosed ```sh block");
  return blocks;
}

/** Runs one block with `bash -euo pipefail`; resolves with {code, stdout, stderr}. */
export function bash(script, env, timeoutMs = 6 * 60_000) {
  return new Promise((resolve) => {
    // stdin is not a socket, so bash does not take itself for a remote shell and read bashrc.
    const child = spawn("bash", ["-euo", "pipefail", "-c", script], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? signal, stdout, stderr });
    });
  });
}

/**
 * The environment a runbook's commands get against `server`: its URL, the sandbox key, its
 * database and data folder, and `twh` on the PATH; `extra` adds or overrides variables.
 */
export function runbookEnv(server, extra = {}) {
  return {
    PATH: `${dirname(binaryPath())}:${process.env.PATH}`,
    HOME: process.env.HOME,
    LANG: "C.UTF-8",
    TWH_URL: server.url,
    TWH_KEY: server.apiKey,
    DATABASE_URL: server.databaseUrl,
    TWH_DATA_DIR: join(server.dataDir, "data"),
    RUST_LOG: "warn",
    ...extra,
  };
}

/**
 * Runs every block in order; each must exit 0. Resolves with `out(prefix)`: the stdout of the
 * blocks under the headings that start with `prefix` ("2." for "## 2. …").
 */
export async function runBlocks(blocks, env, timeoutMs = 2 * 60_000) {
  const outputs = [];
  for (const [i, block] of blocks.entries()) {
    const result = await bash(block.script, env, timeoutMs);
    assert.equal(
      result.code,
      0,
      `block ${i + 1} under "${block.heading}" failed:\n${block.script}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`,
    );
    outputs.push({ heading: block.heading, out: result.stdout });
  }
  return (prefix) =>
    outputs
      .filter((o) => o.heading.startsWith(prefix))
      .map((o) => o.out)
      .join("\n");
}
