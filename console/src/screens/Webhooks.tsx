// Webhooks: endpoints, secret reveal and rotation, a test event, deliveries with every attempt,
// and replay (one, a time window, or every dead letter).
import { useState } from "react";
import { useMutation, useQuery } from "urql";
import { graphql } from "../gql";
import type { ConsoleWebhookDeliveriesQuery, WebhookDeliveryStatus } from "../gql/graphql";
import { Confirm, ErrorBanner, Field, Pager, ShowGraphQL, UserErrors, newKey, usePager, when } from "../ui";

const ENDPOINTS = graphql(`
  query ConsoleWebhookEndpoints($first: Int!, $after: String) {
    webhookEndpoints(first: $first, after: $after) {
      nodes {
        id
        url
        description
        eventTypes
        status
        disabledReason
        failingSince
        version
        createdAt
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
`);

const SECRET = graphql(`
  query ConsoleWebhookSecret($id: ID!) {
    webhookEndpoint(id: $id) {
      id
      secret
    }
  }
`);

const CREATE = graphql(`
  mutation ConsoleCreateWebhook($input: CreateWebhookEndpointInput!, $key: String) {
    createWebhookEndpoint(input: $input, idempotencyKey: $key) {
      endpoint {
        id
        url
        secret
      }
      userErrors {
        code
        field
        message
      }
    }
  }
`);

const ROTATE = graphql(`
  mutation ConsoleRotateWebhookSecret($id: ID!, $key: String) {
    rotateWebhookEndpointSecret(id: $id, idempotencyKey: $key) {
      endpoint {
        id
        secret
      }
      userErrors {
        code
        field
        message
      }
    }
  }
`);

const TEST = graphql(`
  mutation ConsoleSendTestWebhook($id: ID!, $key: String) {
    sendTestWebhook(endpointId: $id, idempotencyKey: $key) {
      delivery {
        id
        status
      }
      userErrors {
        code
        field
        message
      }
    }
  }
`);

const DELIVERIES = graphql(`
  query ConsoleWebhookDeliveries($first: Int!, $after: String, $filter: WebhookDeliveryFilter) {
    webhookDeliveries(first: $first, after: $after, filter: $filter) {
      nodes {
        id
        endpointId
        eventType
        eventId
        status
        attemptCount
        createdAt
        lastAttemptAt
        nextAttemptAt
        attempts {
          number
          attemptedAt
          statusCode
          latencyMs
          error
          responseExcerpt
        }
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
`);

const REPLAY = graphql(`
  mutation ConsoleReplayWebhooks($input: ReplayWebhookDeliveriesInput!, $key: String) {
    replayWebhookDeliveries(input: $input, idempotencyKey: $key) {
      replayedCount
      userErrors {
        code
        field
        message
      }
    }
  }
`);

export function Webhooks() {
  const pager = usePager();
  const variables = { first: 20, after: pager.after };
  const [{ data, error }, refetch] = useQuery({ query: ENDPOINTS, variables });
  const [endpoint, setEndpoint] = useState<string | null>(null);
  return (
    <section aria-label="webhooks">
      <CreateEndpoint onCreated={() => refetch({ requestPolicy: "network-only" })} />
      <ErrorBanner error={error} />
      <div className="table-wrap">
        <table>
          <caption>Endpoints</caption>
          <thead>
            <tr>
              <th scope="col">URL</th>
              <th scope="col">Events</th>
              <th scope="col">Status</th>
              <th scope="col">Failing since</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {data?.webhookEndpoints.nodes.map((e) => (
              <tr key={e.id} data-endpoint={e.id}>
                <td>
                  <button type="button" className="link" onClick={() => setEndpoint(e.id)}>
                    {e.url}
                  </button>
                  {e.description && <div className="muted">{e.description}</div>}
                </td>
                <td>{e.eventTypes.length ? e.eventTypes.join(", ") : "all"}</td>
                <td>
                  {e.status}
                  {e.disabledReason && <div className="muted">{e.disabledReason}</div>}
                </td>
                <td>{when(e.failingSince)}</td>
                <td>
                  <EndpointActions id={e.id} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <Pager pager={pager} pageInfo={data?.webhookEndpoints.pageInfo} />
      <ShowGraphQL document={ENDPOINTS} variables={variables} />
      <Deliveries endpointId={endpoint} onClearEndpoint={() => setEndpoint(null)} />
    </section>
  );
}

function CreateEndpoint({ onCreated }: { onCreated: () => void }) {
  const [url, setUrl] = useState("");
  const [events, setEvents] = useState("");
  const [description, setDescription] = useState("");
  const [key, setKey] = useState(newKey);
  const [result, create] = useMutation(CREATE);
  const created = result.data?.createWebhookEndpoint;
  return (
    <form
      className="card"
      aria-label="register an endpoint"
      onSubmit={async (e) => {
        e.preventDefault();
        const response = await create({
          key,
          input: {
            url,
            description: description || undefined,
            eventTypes: events
              .split(",")
              .map((t) => t.trim())
              .filter(Boolean),
          },
        });
        if (response.data?.createWebhookEndpoint.endpoint) {
          setUrl("");
          setEvents("");
          setDescription("");
          setKey(newKey());
          onCreated();
        }
      }}
    >
      <h2>Register an endpoint</h2>
      <div className="row">
        <Field label="URL">
          <input type="url" value={url} onChange={(e) => setUrl(e.target.value)} required />
        </Field>
        <Field label="Event types (comma-separated; empty for all)">
          <input value={events} onChange={(e) => setEvents(e.target.value)} placeholder="stock.changed, sales_order.shipped" />
        </Field>
        <Field label="Description">
          <input value={description} onChange={(e) => setDescription(e.target.value)} />
        </Field>
        <button type="submit" className="primary" disabled={result.fetching}>
          Register
        </button>
      </div>
      <ErrorBanner error={result.error} />
      <UserErrors errors={created?.userErrors} />
      {created?.endpoint && (
        <p role="status" className="secret">
          Registered {created.endpoint.url}. Its signing secret: <code>{created.endpoint.secret}</code>
        </p>
      )}
    </form>
  );
}

function EndpointActions({ id }: { id: string }) {
  const [shown, setShown] = useState(false);
  const [{ data: secret, error: secretError }] = useQuery({ query: SECRET, variables: { id }, pause: !shown });
  const [rotation, rotate] = useMutation(ROTATE);
  const [test, sendTest] = useMutation(TEST);
  const [confirmRotate, setConfirmRotate] = useState(false);
  const rotated = rotation.data?.rotateWebhookEndpointSecret;
  const tested = test.data?.sendTestWebhook;
  return (
    <div className="actions-inline">
      <button type="button" onClick={() => setShown((s) => !s)} aria-expanded={shown}>
        {shown ? "Hide secret" : "Reveal secret"}
      </button>
      <button type="button" onClick={() => setConfirmRotate(true)}>
        Rotate secret
      </button>
      <button type="button" onClick={() => sendTest({ id, key: newKey() })} disabled={test.fetching}>
        Send test event
      </button>
      {shown && <code className="secret">{secret?.webhookEndpoint?.secret ?? ""}</code>}
      {tested?.delivery && <span role="status">Test delivery {tested.delivery.id} queued</span>}
      <ErrorBanner error={secretError ?? rotation.error ?? test.error} />
      <UserErrors errors={rotated?.userErrors ?? tested?.userErrors} />
      {rotated?.endpoint && (
        <span role="status">
          New secret: <code className="secret">{rotated.endpoint.secret}</code> (the old one keeps verifying for a while)
        </span>
      )}
      {confirmRotate && (
        <Confirm
          title="Rotate the signing secret?"
          onCancel={() => setConfirmRotate(false)}
          onConfirm={async () => {
            await rotate({ id, key: newKey() });
            setConfirmRotate(false);
          }}
        >
          <p>Deliveries are signed with a new secret; the old one keeps verifying during the overlap.</p>
        </Confirm>
      )}
    </div>
  );
}

const STATUSES: WebhookDeliveryStatus[] = ["PENDING", "FAILED", "DEAD", "SUCCEEDED"];

function Deliveries({ endpointId, onClearEndpoint }: { endpointId: string | null; onClearEndpoint: () => void }) {
  const [status, setStatus] = useState<WebhookDeliveryStatus | "">("");
  const pager = usePager();
  const variables = {
    first: 20,
    after: pager.after,
    filter: { endpointId: endpointId ?? undefined, status: status || undefined },
  };
  const [{ data, error }, refetch] = useQuery({ query: DELIVERIES, variables });
  const [replay, runReplay] = useMutation(REPLAY);
  const [since, setSince] = useState("");
  const [until, setUntil] = useState("");
  const [open, setOpen] = useState<string | null>(null);
  const replayed = replay.data?.replayWebhookDeliveries;
  const doReplay = async (input: Parameters<typeof runReplay>[0]["input"]) => {
    await runReplay({ input, key: newKey() });
    refetch({ requestPolicy: "network-only" });
  };
  return (
    <section className="panel" aria-label="deliveries">
      <header className="panel-head">
        <h2>Deliveries{endpointId ? " of one endpoint" : ""}</h2>
        {endpointId && (
          <button type="button" onClick={onClearEndpoint}>
            All endpoints
          </button>
        )}
        <button type="button" onClick={() => refetch({ requestPolicy: "network-only" })}>
          Refresh
        </button>
      </header>
      <form className="filters" onSubmit={(e) => e.preventDefault()}>
        <Field label="Status">
          <select value={status} onChange={(e) => (setStatus(e.target.value as WebhookDeliveryStatus | ""), pager.reset())}>
            <option value="">any</option>
            {STATUSES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </Field>
        <button type="button" onClick={() => doReplay({ statuses: ["DEAD"], endpointId: endpointId ?? undefined })}>
          Replay all dead letters
        </button>
        <Field label="From">
          <input type="datetime-local" value={since} onChange={(e) => setSince(e.target.value)} />
        </Field>
        <Field label="To">
          <input type="datetime-local" value={until} onChange={(e) => setUntil(e.target.value)} />
        </Field>
        <button
          type="button"
          disabled={!since || !until}
          onClick={() =>
            doReplay({
              since: new Date(since).toISOString(),
              until: new Date(until).toISOString(),
              endpointId: endpointId ?? undefined,
            })
          }
        >
          Replay the window
        </button>
      </form>
      <ErrorBanner error={error ?? replay.error} />
      <UserErrors errors={replayed?.userErrors} />
      {replayed && replayed.userErrors.length === 0 && <p role="status">Replayed {replayed.replayedCount} deliveries.</p>}
      <div className="table-wrap">
        <table>
          <caption className="sr-only">Deliveries</caption>
          <thead>
            <tr>
              <th scope="col">Event</th>
              <th scope="col">Status</th>
              <th scope="col">Attempts</th>
              <th scope="col">Last attempt</th>
              <th scope="col">Next attempt</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {data?.webhookDeliveries.nodes.map((d) => (
              <DeliveryRow
                key={d.id}
                delivery={d}
                open={open === d.id}
                onToggle={() => setOpen(open === d.id ? null : d.id)}
                onReplay={() => doReplay({ deliveryIds: [d.id] })}
              />
            ))}
          </tbody>
        </table>
      </div>
      <Pager pager={pager} pageInfo={data?.webhookDeliveries.pageInfo} />
      <ShowGraphQL document={DELIVERIES} variables={variables} />
    </section>
  );
}

type Delivery = ConsoleWebhookDeliveriesQuery["webhookDeliveries"]["nodes"][number];

function DeliveryRow({
  delivery: d,
  open,
  onToggle,
  onReplay,
}: {
  delivery: Delivery;
  open: boolean;
  onToggle: () => void;
  onReplay: () => void;
}) {
  return (
    <>
      <tr data-delivery={d.id} data-status={d.status}>
        <td>
          {d.eventType}
          <div className="muted">{d.eventId}</div>
        </td>
        <td>
          <span className={`status status-${d.status.toLowerCase()}`}>{d.status}</span>
        </td>
        <td>{d.attemptCount}</td>
        <td>{when(d.lastAttemptAt)}</td>
        <td>{when(d.nextAttemptAt)}</td>
        <td>
          <button type="button" onClick={onToggle} aria-expanded={open}>
            Attempts
          </button>{" "}
          <button type="button" onClick={onReplay} disabled={d.status === "PENDING"}>
            Replay
          </button>
        </td>
      </tr>
      {open && (
        <tr className="attempts">
          <td colSpan={6}>
            <table>
              <thead>
                <tr>
                  <th scope="col">#</th>
                  <th scope="col">At</th>
                  <th scope="col">Status</th>
                  <th scope="col">Latency</th>
                  <th scope="col">Response or error</th>
                </tr>
              </thead>
              <tbody>
                {d.attempts.map((a) => (
                  <tr key={a.number}>
                    <td>{a.number}</td>
                    <td>{when(a.attemptedAt)}</td>
                    <td>{a.statusCode ?? "—"}</td>
                    <td>{a.latencyMs} ms</td>
                    <td>
                      <code>{a.error ?? a.responseExcerpt ?? ""}</code>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </td>
        </tr>
      )}
    </>
  );
}
