// PostGraphile 4 (the older engine, graphql-js resolvers with look-ahead) serving the bench
// database's `public` schema over HTTP, for bench/peer/run.sh. Default options except one:
// the per-query console log is off (`disableQueryLog`), as PostGraphile's production advice
// says; with it on, every request prints its whole query to the terminal.
//
// Usage, in bench/peer/pg4: DATABASE_URL=postgres://... PORT=18192 POOL=8 node pg4-server.mjs
import { createServer } from "node:http";
import pg from "pg";
import postgraphile4 from "postgraphile4";

const { postgraphile } = postgraphile4;
const connectionString = process.env.DATABASE_URL;
const port = Number(process.env.PORT ?? 18192);
if (!connectionString) {
  console.error("DATABASE_URL is required");
  process.exit(2);
}

// The same number of database connections as TWH's pool (TWH_DB_POOL_SIZE).
const pool = new pg.Pool({ connectionString, max: Number(process.env.POOL ?? 8) });
const handler = postgraphile(pool, "public", {
  graphqlRoute: "/graphql",
  disableQueryLog: true,
});
// Build the schema before taking requests, so the first request does not pay for it.
await handler.getGraphQLSchema();

const server = createServer(handler);
server.listen(port, "127.0.0.1", () => {
  console.log(`postgraphile 4 listening on 127.0.0.1:${port}`);
});

const stop = async () => {
  server.close();
  await handler.release();
  await pool.end();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
