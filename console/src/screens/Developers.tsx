// Developers: API keys with roles (the secret shown once; revoke), usage against the plan with
// the projected month-end, and the audit log.
import { useState } from "react";
import { useMutation, useQuery } from "urql";
import { graphql } from "../gql";
import type { Role } from "../gql/graphql";
import { useCan } from "../role";
import { Confirm, ErrorBanner, Field, Pager, ShowGraphQL, UserErrors, newKey, usePager, when } from "../ui";

const KEYS = graphql(`
  query ConsoleApiKeys($first: Int!, $after: String) {
    apiKeys(first: $first, after: $after) {
      nodes {
        id
        name
        prefix
        role
        createdAt
        revokedAt
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
`);

const CREATE_KEY = graphql(`
  mutation ConsoleCreateApiKey($input: CreateApiKeyInput!, $key: String) {
    createApiKey(input: $input, idempotencyKey: $key) {
      apiKey {
        id
        name
        role
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

const REVOKE_KEY = graphql(`
  mutation ConsoleRevokeApiKey($id: ID!, $key: String) {
    revokeApiKey(id: $id, idempotencyKey: $key) {
      apiKey {
        id
        revokedAt
      }
      userErrors {
        code
        field
        message
      }
    }
  }
`);

const USAGE = graphql(`
  query ConsoleUsage {
    usage {
      plan
      callsThisPeriod
      projectedCalls
      callLimit
      overageAllowed
      overageCalls
      periodStart
      periodEnd
      requestsPerSecond
      burst
      webhookEndpointLimit
      limitsEnforced
    }
  }
`);

const RECENT_ERRORS = graphql(`
  query ConsoleRecentErrors($days: Int!) {
    recentErrors(days: $days) {
      since
      errors {
        code
        count
        lastMessage
        lastRequestId
        lastSeenAt
      }
    }
  }
`);

const AUDIT = graphql(`
  query ConsoleAudit($first: Int!, $after: String, $filter: AuditEventFilter) {
    auditEvents(first: $first, after: $after, filter: $filter) {
      nodes {
        id
        createdAt
        actor
        action
        targetType
        targetId
        requestId
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
`);

const ROLES: Role[] = ["OWNER", "ADMIN", "DEVELOPER", "OPERATOR", "VIEWER"];

export function Developers() {
  const can = useCan();
  return (
    <>
      <Usage />
      {can.develop && <RecentErrors />}
      {can.develop && <Keys />}
      {can.audit && <Audit />}
    </>
  );
}

function Usage() {
  const [{ data, error }] = useQuery({ query: USAGE });
  const usage = data?.usage;
  const share = usage?.callLimit ? Math.min(1, usage.projectedCalls / usage.callLimit) : 0;
  return (
    <section className="card" aria-label="usage">
      <h2>Usage this period</h2>
      <ErrorBanner error={error} />
      {usage && (
        <>
          <p>
            Plan <strong>{usage.plan}</strong>: {usage.callsThisPeriod} calls so far, projected{" "}
            <strong>{usage.projectedCalls}</strong> by {when(usage.periodEnd)}
            {usage.callLimit != null ? ` against a limit of ${usage.callLimit}` : " (no call limit)"}.
            {usage.overageCalls > 0 && ` ${usage.overageCalls} calls over the limit.`}
          </p>
          {usage.callLimit != null && <meter min={0} max={1} value={share} aria-label="projected share of the limit" />}
          <p className="muted">
            {usage.requestsPerSecond} requests/s, bursts of {usage.burst}; {usage.webhookEndpointLimit} webhook endpoints;
            limits {usage.limitsEnforced ? "enforced" : "not enforced on this server"}.
          </p>
        </>
      )}
    </section>
  );
}

function RecentErrors() {
  const [days, setDays] = useState(7);
  const [{ data, error }, refetch] = useQuery({ query: RECENT_ERRORS, variables: { days } });
  const errors = data?.recentErrors.errors ?? [];
  return (
    <section className="card" aria-label="recent errors">
      <header className="panel-head">
        <h2>Recent errors by code</h2>
        <div className="actions-inline">
          <Field label="Days">
            <select value={days} onChange={(e) => setDays(Number(e.target.value))}>
              {[1, 7, 31].map((d) => (
                <option key={d} value={d}>
                  {d}
                </option>
              ))}
            </select>
          </Field>
          <button type="button" onClick={() => refetch({ requestPolicy: "network-only" })}>
            Refresh
          </button>
        </div>
      </header>
      <ErrorBanner error={error} />
      {data && errors.length === 0 && <p>No errors since {data.recentErrors.since}.</p>}
      {errors.length > 0 && (
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Code</th>
                <th scope="col">Count</th>
                <th scope="col">Last seen</th>
                <th scope="col">Last message</th>
                <th scope="col">Request id</th>
              </tr>
            </thead>
            <tbody>
              {errors.map((e) => (
                <tr key={e.code} data-error-code={e.code}>
                  <td>
                    <code className="code">{e.code}</code>
                  </td>
                  <td data-count>{e.count}</td>
                  <td>{when(e.lastSeenAt)}</td>
                  <td>{e.lastMessage}</td>
                  <td className="muted">{e.lastRequestId}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <p className="note">
        <a href="/docs/errors" target="_blank" rel="noreferrer">
          What each code means
        </a>
      </p>
    </section>
  );
}

function Keys() {
  const pager = usePager();
  const variables = { first: 20, after: pager.after };
  const [{ data, error }, refetch] = useQuery({ query: KEYS, variables });
  const [name, setName] = useState("");
  const [role, setRole] = useState<Role>("DEVELOPER");
  const [created, create] = useMutation(CREATE_KEY);
  const [revocation, revoke] = useMutation(REVOKE_KEY);
  const [confirm, setConfirm] = useState<{ id: string; name: string } | null>(null);
  const made = created.data?.createApiKey;
  return (
    <section className="card" aria-label="API keys">
      <h2>API keys</h2>
      <form
        className="row"
        onSubmit={async (e) => {
          e.preventDefault();
          const response = await create({ key: newKey(), input: { name, role } });
          if (response.data?.createApiKey.apiKey) {
            setName("");
            refetch({ requestPolicy: "network-only" });
          }
        }}
      >
        <Field label="Name">
          <input value={name} onChange={(e) => setName(e.target.value)} required />
        </Field>
        <Field label="Role">
          <select value={role} onChange={(e) => setRole(e.target.value as Role)}>
            {ROLES.map((r) => (
              <option key={r}>{r}</option>
            ))}
          </select>
        </Field>
        <button type="submit" className="primary" disabled={created.fetching}>
          Create key
        </button>
      </form>
      <ErrorBanner error={error ?? created.error ?? revocation.error} />
      <UserErrors errors={made?.userErrors ?? revocation.data?.revokeApiKey.userErrors} />
      {made?.apiKey?.secret && (
        <p role="status" className="secret">
          Key “{made.apiKey.name}” ({made.apiKey.role}): <code>{made.apiKey.secret}</code> — copy it now, it is not shown
          again.
        </p>
      )}
      <div className="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Prefix</th>
              <th scope="col">Role</th>
              <th scope="col">Created</th>
              <th scope="col">Revoked</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {data?.apiKeys.nodes.map((k) => (
              <tr key={k.id}>
                <td>{k.name}</td>
                <td>
                  <code>{k.prefix}…</code>
                </td>
                <td>{k.role}</td>
                <td>{when(k.createdAt)}</td>
                <td>{when(k.revokedAt)}</td>
                <td>
                  {!k.revokedAt && (
                    <button type="button" onClick={() => setConfirm({ id: k.id, name: k.name })}>
                      Revoke
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <Pager pager={pager} pageInfo={data?.apiKeys.pageInfo} />
      <ShowGraphQL document={KEYS} variables={variables} />
      {confirm && (
        <Confirm
          title={`Revoke “${confirm.name}”?`}
          onCancel={() => setConfirm(null)}
          onConfirm={async () => {
            await revoke({ id: confirm.id, key: newKey() });
            setConfirm(null);
            refetch({ requestPolicy: "network-only" });
          }}
        >
          <p>Every call with this key, and every session it signed in, stops at once.</p>
        </Confirm>
      )}
    </section>
  );
}

function Audit() {
  const pager = usePager();
  const [action, setAction] = useState("");
  const variables = { first: 20, after: pager.after, filter: { action: action || undefined } };
  const [{ data, error }] = useQuery({ query: AUDIT, variables });
  return (
    <section className="card" aria-label="audit log">
      <h2>Audit log</h2>
      <form className="filters" onSubmit={(e) => e.preventDefault()}>
        <Field label="Action">
          <input value={action} onChange={(e) => (setAction(e.target.value.trim()), pager.reset())} placeholder="stock.adjust" />
        </Field>
      </form>
      <ErrorBanner error={error} />
      <div className="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Actor</th>
              <th scope="col">Action</th>
              <th scope="col">Target</th>
              <th scope="col">Request</th>
            </tr>
          </thead>
          <tbody>
            {data?.auditEvents.nodes.map((a) => (
              <tr key={a.id}>
                <td>{when(a.createdAt)}</td>
                <td className="actor">{a.actor}</td>
                <td>{a.action}</td>
                <td>
                  {a.targetType} {a.targetId}
                </td>
                <td className="muted">{a.requestId ?? ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <Pager pager={pager} pageInfo={data?.auditEvents.pageInfo} />
      <ShowGraphQL document={AUDIT} variables={variables} />
    </section>
  );
}
