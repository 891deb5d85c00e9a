// A webhook receiver on 127.0.0.1 (node:http) that records every request and answers each path
// as the test tells it: a fixed status, or a function of the request and of how many times this
// webhook-id has reached this path.

import { createServer } from "node:http";

/**
 * @typedef {{path: string, method: string, headers: Record<string, string>, body: string,
 *   json: any, webhookId: string|undefined, attempt: number, receivedAt: number}} Received
 * @typedef {{status?: number, headers?: Record<string, string>, body?: string, delayMs?: number}} Reply
 */

export async function startReceiver() {
  /** @type {Received[]} */
  const received = [];
  /** @type {Map<string, (request: Received) => Reply>} */
  const handlers = new Map();
  const timers = new Set();

  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const path = new URL(req.url, "http://receiver").pathname;
      const webhookId = req.headers["webhook-id"];
      let json = null;
      try {
        json = JSON.parse(body);
      } catch {
        // kept as text
      }
      const attempt =
        received.filter((r) => r.path === path && webhookId !== undefined && r.webhookId === webhookId).length + 1;
      /** @type {Received} */
      const request = {
        path,
        method: req.method,
        headers: { ...req.headers },
        body,
        json,
        webhookId,
        attempt,
        receivedAt: Date.now(),
      };
      received.push(request);
      const handler = handlers.get(path);
      const reply = (handler ? handler(request) : null) ?? { status: 200 };
      const send = () => {
        timers.delete(timer);
        if (res.destroyed) return;
        res.writeHead(reply.status ?? 200, { "content-type": "text/plain", ...(reply.headers ?? {}) });
        const status = reply.status ?? 200;
        res.end(reply.body ?? (status < 300 ? "ok" : `failing on purpose (${status})`));
      };
      const timer = setTimeout(send, reply.delayMs ?? 0);
      timers.add(timer);
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();

  return {
    port,
    /** The absolute URL of a path on this receiver. */
    url: (path) => `http://127.0.0.1:${port}${path}`,
    /** How `path` answers from now on: a status, or a function of the request giving a Reply. */
    on(path, behaviour) {
      handlers.set(path, typeof behaviour === "number" ? () => ({ status: behaviour }) : behaviour);
    },
    /** Every request received so far at `path` (all paths when omitted), oldest first. */
    requests: (path) => (path === undefined ? [...received] : received.filter((r) => r.path === path)),
    async close() {
      for (const timer of timers) clearTimeout(timer);
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
