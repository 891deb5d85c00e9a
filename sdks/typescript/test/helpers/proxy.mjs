// A small HTTP proxy for the retry tests: it sits between the SDK and `twh serve`, records what
// it sees, and lets a test decide per request to forward it, answer it itself, or forward it and
// then drop the response (the server applies the request, the client never hears back).

import { createServer } from "node:http";

/**
 * @param {string} upstream the server's root URL
 * @param {(seen: {n: number, body: any, headers: import('node:http').IncomingHttpHeaders}) =>
 *   "forward" | "drop-response" | {status: number, headers?: Record<string,string>, body?: string}} decide
 */
export async function startProxy(upstream, decide = () => "forward") {
  /** Every request seen: its number, parsed JSON body and headers. */
  const seen = [];
  const server = createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const raw = Buffer.concat(chunks);
    let body = null;
    try {
      body = JSON.parse(raw.toString("utf8"));
    } catch {
      body = null;
    }
    const entry = { n: seen.length + 1, body, headers: req.headers };
    seen.push(entry);
    const action = decide(entry);
    if (typeof action === "object") {
      res.writeHead(action.status, { "content-type": "application/graphql-response+json", ...(action.headers ?? {}) });
      res.end(action.body ?? "");
      return;
    }
    const headers = {};
    for (const name of ["authorization", "accept", "content-type", "idempotency-key", "user-agent"]) {
      if (req.headers[name]) headers[name] = req.headers[name];
    }
    const answer = await fetch(new URL(req.url, upstream), { method: req.method, headers, body: raw.length ? raw : undefined });
    const text = await answer.text();
    if (action === "drop-response") {
      // The server has answered, so the write is applied; the client gets a broken connection.
      req.socket.destroy();
      return;
    }
    const out = {};
    for (const name of ["content-type", "x-request-id", "retry-after", "idempotent-replayed"]) {
      const value = answer.headers.get(name);
      if (value !== null) out[name] = value;
    }
    res.writeHead(answer.status, out);
    res.end(text);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}
