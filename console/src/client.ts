// The GraphQL client: urql over HTTP with the session's CSRF token, subscriptions over
// graphql-ws on the same origin (the cookie authenticates the upgrade; no key in the page).
import { createClient as createWsClient } from "graphql-ws";
import { Client, cacheExchange, fetchExchange, subscriptionExchange } from "urql";
import { csrfHeaders } from "./session";

export function makeClient(onSessionEnded: () => void): Client {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = createWsClient({
    url: `${scheme}://${location.host}/graphql/ws`,
    lazy: true,
    retryAttempts: Infinity,
    // A refused session (4403) is not retried: the console goes back to its sign-in page.
    shouldRetry: (event) => (event as CloseEvent | undefined)?.code !== 4403,
    on: {
      closed: (event) => {
        // 4403: the key was revoked or the tenant suspended.
        if ((event as CloseEvent).code === 4403) onSessionEnded();
      },
    },
  });
  return new Client({
    url: "/graphql",
    requestPolicy: "cache-and-network",
    fetchOptions: () => ({
      credentials: "same-origin",
      headers: { ...csrfHeaders(), Accept: "application/graphql-response+json, application/json" },
    }),
    exchanges: [
      cacheExchange,
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query || "" };
          return {
            subscribe(sink) {
              const unsubscribe = ws.subscribe(input, sink);
              return { unsubscribe };
            },
          };
        },
      }),
    ],
  });
}
