// The README's quickstart (its first js/ts code block), run unchanged against a fresh
// `twh serve` with TWH_URL and TWH_API_KEY set: it must exit 0.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { after, before, test } from "node:test";

import { startServer } from "./helpers/server.mjs";

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

export function quickstart(markdown) {
  const block = /```(?:js|javascript|mjs|ts|typescript)\n([\s\S]*?)```/.exec(markdown);
  if (!block) throw new Error("the README has no js/ts code block");
  return block[1];
}

test("the README quickstart runs as written", async () => {
  const code = quickstart(readFileSync(new URL("../README.md", import.meta.url), "utf8"));
  assert.match(code, /process\.env\.TWH_API_KEY/);
  // Inside the package folder, so that `import … from "@twh/sdk"` resolves to this package.
  const dir = fileURLToPath(new URL(`./.tmp/readme-${process.pid}/`, import.meta.url));
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "quickstart.mjs");
  writeFileSync(file, code);
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [file], {
      env: { ...process.env, TWH_URL: server.url, TWH_API_KEY: server.apiKey },
      timeout: 30_000,
    });
    assert.match(stdout, /WH-MAIN now has \d+ mugs/);
    assert.match(stdout, /STORE-1 on hand \d+ available \d+/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
