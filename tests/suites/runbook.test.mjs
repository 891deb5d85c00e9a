// runbooks/WEBHOOK_DLQ.md, run as an operator would: a live server with a dead delivery (a
// receiver that always fails, a short retry schedule), then every ```sh block of the runbook in
// order with bash, TWH_URL, TWH_KEY and ENDPOINT_ID set. Each block must exit 0 (run with
// -euo pipefail, so no failing command hides in the middle), the receiver is fixed (answers
// 200) just before the "After the fix" section, and at the end the delivery is SUCCEEDED.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { client, show, waitFor } from "../lib/api.mjs";
import { startReceiver } from "../lib/receiver.mjs";
import { startServer } from "../lib/server.mjs";
import { bash, shellBlocks } from "../lib/runbook.mjs";

const RUNBOOK = fileURLToPath(new URL("../../runbooks/WEBHOOK_DLQ.md", import.meta.url));

let server;
let receiver;

before(async () => {
  receiver = await startReceiver();
  server = await startServer({
    env: { TWH_WEBHOOK_ALLOW_PRIVATE_TARGETS: "true", TWH_WEBHOOK_RETRY_SCHEDULE: "0,0.3,0.3" },
  });
});
after(async () => {
  await server?.stop();
  await receiver?.close();
});

test("the runbook's commands, run in order, find the dead letter, pause, fix and replay it", async () => {
  const blocks = shellBlocks(readFileSync(RUNBOOK, "utf8"));
  assert.ok(blocks.length >= 8, `the runbook has its commands in sh blocks (${blocks.length})`);
  const fixAt = blocks.findIndex((b) => /after the fix/i.test(b.heading));
  assert.ok(fixAt > 0, 'a "## … After the fix …" section with commands');
  const replayAt = blocks.findIndex((b) => b.script.includes("/v1/webhook-deliveries/replay"));
  assert.ok(replayAt >= fixAt, "the replay comes after the fix");

  // A dead delivery on a live server.
  let fixed = false;
  receiver.on("/hook", () => (fixed ? { status: 200 } : { status: 500, body: "receiver bug: NullPointer in handler" }));
  const api = client(server);
  const { endpoint } = await api.mutate(
    "createWebhookEndpoint",
    `mutation($input: CreateWebhookEndpointInput!) {
      createWebhookEndpoint(input: $input) { endpoint { id version } userErrors { code field message } } }`,
    { input: { url: receiver.url("/hook"), eventTypes: ["stock.changed"], description: "runbook drill" } },
  );
  const change = await api.receive("MUG-12OZ", "WH-MAIN", 1);
  const delivery = await waitFor(
    "the drill's delivery to end DEAD",
    async () =>
      (
        await api.gql(
          `query($id: ID!) { webhookDeliveries(filter: {endpointId: $id}, first: 10) { nodes { id eventId status payload } } }`,
          { id: endpoint.id },
        )
      ).webhookDeliveries.nodes.find((d) => d.payload?.data?.groupId === change.groupId),
    (d) => d?.status === "DEAD",
  );

  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    LANG: "C.UTF-8",
    TWH_URL: server.url,
    TWH_KEY: server.apiKey,
    ENDPOINT_ID: endpoint.id,
  };
  const endpointStatus = async () =>
    (await api.gql(`query($id: ID!) { webhookEndpoint(id: $id) { status } }`, { id: endpoint.id })).webhookEndpoint?.status;

  const transcript = [];
  for (const [i, block] of blocks.entries()) {
    if (i === fixAt) fixed = true; // the receiver's owner fixed it
    const result = await bash(block.script, env);
    transcript.push(`--- block ${i + 1} (${block.heading}) exit ${result.code}\n${result.stdout}${result.stderr}`);
    assert.equal(
      result.code,
      0,
      `block ${i + 1} under "${block.heading}" failed:\n${block.script}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`,
    );
    // What the block says it does, it did.
    if (block.script.includes("/metrics")) {
      assert.match(result.stdout, /^twh_webhook_dead_letters/m, "the metrics block shows the dead letters");
      assert.match(result.stdout, /^twh_outbox_lag_seconds/m);
      assert.match(result.stdout, /^twh_webhook_deliveries_total\{[^}]*outcome=/m);
    }
    if (block.script.includes("status: DEAD")) {
      assert.ok(result.stdout.includes(delivery.id), `the dead-letter listing names ${delivery.id}:\n${result.stdout}`);
    }
    if (block.script.includes('d["attempts"]')) {
      assert.match(result.stdout, /status=500/, `the attempts show the receiver's 500:\n${result.stdout}`);
      assert.match(result.stdout, /receiver bug: NullPointer/, `and its answer:\n${result.stdout}`);
    }
    if (block.script.includes(`'{"enabled": false}'`)) {
      assert.equal(await endpointStatus(), "DISABLED", "the disable block disabled the endpoint");
    }
    if (block.script.includes(`'{"enabled": true}'`)) {
      assert.equal(await endpointStatus(), "ENABLED", "the enable block enabled it again");
    }
    if (i === replayAt) {
      assert.match(result.stdout, /"replayedCount":\s*1\b/, `one dead delivery replayed:\n${result.stdout}`);
    }
  }

  const final = (
    await api.gql(`query($id: ID!) { webhookDelivery(id: $id) { status attemptCount attempts { statusCode } } }`, {
      id: delivery.id,
    })
  ).webhookDelivery;
  assert.equal(final.status, "SUCCEEDED", `after the runbook the delivery is SUCCEEDED: ${show(final)}\n${transcript.join("\n")}`);
  assert.equal(final.attempts.at(-1).statusCode, 200);
  const sent = receiver.requests("/hook").filter((r) => r.webhookId === delivery.eventId);
  assert.equal(sent.at(-1).json?.data?.groupId, change.groupId);
  assert.ok(sent.length >= 4, `three failed attempts and the replayed one reached the receiver (${sent.length})`);
  assert.equal(await endpointStatus(), "ENABLED", "the endpoint is left enabled");
});
