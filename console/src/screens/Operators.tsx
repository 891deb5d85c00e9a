// Operators: every tenant with its plan, overrides, status and usage; change a plan, suspend and
// resume.
import { useState } from "react";
import { useMutation, useQuery } from "urql";
import { graphql } from "../gql";
import { Confirm, ErrorBanner, Field, Pager, ShowGraphQL, UserErrors, usePager, when } from "../ui";

const TENANTS = graphql(`
  query ConsoleTenants($first: Int!, $after: String) {
    tenants(first: $first, after: $after) {
      nodes {
        id
        name
        plan
        planOverrides
        status
        sandbox
        createdAt
        usage {
          callsThisPeriod
          projectedCalls
          callLimit
          periodEnd
          limitsEnforced
        }
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
`);

const HEALTH = graphql(`
  query ConsolePlatformHealth {
    platformHealth {
      outboxLagSeconds
      unrelayedEvents
      webhookBacklog
      webhookDeadLetters
      jobsQueued
      jobsRunning
      lastReconciliation {
        id
        tenantId
        levelsChecked
        mismatches
        finishedAt
      }
    }
  }
`);

const SUSPEND = graphql(`
  mutation ConsoleSuspendTenant($id: ID!) {
    suspendTenant(tenantId: $id) {
      tenant {
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

const RESUME = graphql(`
  mutation ConsoleResumeTenant($id: ID!) {
    resumeTenant(tenantId: $id) {
      tenant {
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

const PLAN = graphql(`
  mutation ConsoleUpdateTenantPlan($input: UpdateTenantPlanInput!) {
    updateTenantPlan(input: $input) {
      tenant {
        id
        plan
        planOverrides
      }
      userErrors {
        code
        field
        message
      }
    }
  }
`);

export function Operators() {
  const pager = usePager();
  const variables = { first: 25, after: pager.after };
  const [{ data, error }, refetch] = useQuery({ query: TENANTS, variables });
  const [suspension, suspend] = useMutation(SUSPEND);
  const [resumption, resume] = useMutation(RESUME);
  const [confirm, setConfirm] = useState<{ id: string; name: string } | null>(null);
  const [editing, setEditing] = useState<string | null>(null);
  const refresh = () => refetch({ requestPolicy: "network-only" });
  return (
    <>
    <Health />
    <section aria-label="tenants">
      <ErrorBanner error={error ?? suspension.error ?? resumption.error} />
      <UserErrors errors={suspension.data?.suspendTenant.userErrors ?? resumption.data?.resumeTenant.userErrors} />
      <div className="table-wrap">
        <table>
          <caption>Tenants</caption>
          <thead>
            <tr>
              <th scope="col">Tenant</th>
              <th scope="col">Plan</th>
              <th scope="col">Status</th>
              <th scope="col">Calls this period</th>
              <th scope="col">Projected</th>
              <th scope="col">Limit</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {data?.tenants.nodes.map((t) => (
              <tr key={t.id} data-tenant={t.id}>
                <td>
                  {t.name}
                  {t.sandbox && <span className="badge">sandbox</span>}
                  <div className="muted">
                    {t.id} · since {when(t.createdAt)}
                  </div>
                </td>
                <td>
                  {t.plan}
                  {t.planOverrides != null && <div className="muted">{JSON.stringify(t.planOverrides)}</div>}
                </td>
                <td data-status={t.status}>{t.status}</td>
                <td>{t.usage.callsThisPeriod}</td>
                <td>{t.usage.projectedCalls}</td>
                <td>{t.usage.callLimit ?? "none"}</td>
                <td className="actions-inline">
                  {t.status === "active" ? (
                    <button type="button" onClick={() => setConfirm({ id: t.id, name: t.name })}>
                      Suspend
                    </button>
                  ) : (
                    <button type="button" onClick={async () => (await resume({ id: t.id }), refresh())}>
                      Resume
                    </button>
                  )}
                  <button type="button" onClick={() => setEditing(editing === t.id ? null : t.id)}>
                    Plan
                  </button>
                  {editing === t.id && (
                    <PlanForm tenantId={t.id} plan={t.plan} overrides={t.planOverrides} onDone={() => (setEditing(null), refresh())} />
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <Pager pager={pager} pageInfo={data?.tenants.pageInfo} />
      <ShowGraphQL document={TENANTS} variables={variables} />
      {confirm && (
        <Confirm
          title={`Suspend ${confirm.name}?`}
          onCancel={() => setConfirm(null)}
          onConfirm={async () => {
            await suspend({ id: confirm.id });
            setConfirm(null);
            refresh();
          }}
        >
          <p>Its API keys and sessions stop working at once, and its live connections close. Resume to undo.</p>
        </Confirm>
      )}
    </section>
    </>
  );
}

function Health() {
  const [{ data, error }, refetch] = useQuery({ query: HEALTH, requestPolicy: "network-only" });
  const health = data?.platformHealth;
  const last = health?.lastReconciliation;
  return (
    <section className="card" aria-label="platform health">
      <header className="panel-head">
        <h2>Platform</h2>
        <button type="button" onClick={() => refetch({ requestPolicy: "network-only" })}>
          Refresh
        </button>
      </header>
      <ErrorBanner error={error} />
      {health && (
        <dl className="counts">
          <div>
            <dt>Outbox lag</dt>
            <dd>{health.outboxLagSeconds.toFixed(1)} s</dd>
          </div>
          <div>
            <dt>Unrelayed events</dt>
            <dd>{health.unrelayedEvents}</dd>
          </div>
          <div>
            <dt>Webhook backlog</dt>
            <dd>{health.webhookBacklog}</dd>
          </div>
          <div>
            <dt>Dead letters</dt>
            <dd>{health.webhookDeadLetters}</dd>
          </div>
          <div>
            <dt>Jobs queued</dt>
            <dd>{health.jobsQueued}</dd>
          </div>
          <div>
            <dt>Jobs running</dt>
            <dd>{health.jobsRunning}</dd>
          </div>
          <div>
            <dt>Last reconciliation</dt>
            <dd>
              {last
                ? `${when(last.finishedAt)}: ${last.mismatches} mismatches in ${last.levelsChecked} levels (tenant ${last.tenantId})`
                : "none yet"}
            </dd>
          </div>
        </dl>
      )}
    </section>
  );
}

function PlanForm({
  tenantId,
  plan,
  overrides,
  onDone,
}: {
  tenantId: string;
  plan: string;
  overrides: unknown;
  onDone: () => void;
}) {
  const [name, setName] = useState(plan);
  const [raw, setRaw] = useState(overrides == null ? "" : JSON.stringify(overrides));
  const [parseError, setParseError] = useState<Error | null>(null);
  const [result, update] = useMutation(PLAN);
  return (
    <form
      className="inline-form"
      onSubmit={async (e) => {
        e.preventDefault();
        let parsed: unknown = null;
        try {
          parsed = raw.trim() ? JSON.parse(raw) : null;
        } catch (err) {
          setParseError(err as Error);
          return;
        }
        setParseError(null);
        const response = await update({ input: { tenantId, plan: name, overrides: parsed } });
        if (response.data?.updateTenantPlan.userErrors.length === 0) onDone();
      }}
    >
      <Field label="Plan">
        <select value={name} onChange={(e) => setName(e.target.value)}>
          {["free", "developer", "startup", "growth", "scale", "enterprise"].map((p) => (
            <option key={p}>{p}</option>
          ))}
        </select>
      </Field>
      <Field label="Overrides (JSON)">
        <input value={raw} onChange={(e) => setRaw(e.target.value)} placeholder='{"callLimit": 5000000}' />
      </Field>
      <button type="submit">Save</button>
      <ErrorBanner error={parseError ?? result.error} />
      <UserErrors errors={result.data?.updateTenantPlan.userErrors} />
    </form>
  );
}
