// PostGraphile 5 (Grafast) serving the bench database's `public` schema over HTTP, for
// bench/peer/run.sh. The default ("amber") preset with nothing added: no JWT, no role,
// no row-level security, no plugins. Runs under Node 22 (PostGraphile 5 needs it).
//
// Usage: DATABASE_URL=postgres://... PORT=18191 POOL=8 node pg5-server.mjs
import { createServer } from "node:http";
import { postgraphile } from "postgraphile";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";
import { grafserv } from "postgraphile/grafserv/node";

const connectionString = process.env.DATABASE_URL;
const port = Number(process.env.PORT ?? 18191);
const pool = Number(process.env.POOL ?? 8);
if (!connectionString) {
  console.error("DATABASE_URL is required");
  process.exit(2);
}

const preset = {
  extends: [PostGraphileAmberPreset],
  pgServices: [
    makePgService({
      connectionString,
      schemas: ["public"],
      // The same number of database connections as TWH's pool (TWH_DB_POOL_SIZE).
      poolConfig: { max: pool },
    }),
  ],
  grafserv: {
    port,
    host: "127.0.0.1",
    graphqlPath: "/graphql",
    graphiql: false,
    watch: false,
  },
};

const pgl = postgraphile(preset);
const serv = pgl.createServ(grafserv);
const server = createServer();
server.once("listening", () => {
  console.log(`postgraphile 5 listening on 127.0.0.1:${port}`);
});
await serv.addTo(server);
// Build the schema before taking requests, so the first request does not pay for it.
await pgl.getSchema();
server.listen(port, "127.0.0.1");

const stop = async () => {
  server.close();
  await pgl.release();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
