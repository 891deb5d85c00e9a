// Orders: purchase orders, sales orders, transfers, returns and reservations, filtered and
// paginated, each with the transitions its status allows (every one sends the version it saw).
import { useState, type ReactNode } from "react";
import { useMutation, useQuery, type AnyVariables, type TypedDocumentNode } from "urql";
import { graphql } from "../gql";
import { useCan } from "../role";
import { ErrorBanner, Field, Pager, ShowGraphQL, UserErrors, newKey, usePager, when, type UserErrorView } from "../ui";

const PURCHASE_ORDERS = graphql(`
  query ConsolePurchaseOrders($first: Int!, $after: String, $filter: OrderFilter) {
    purchaseOrders(first: $first, after: $after, filter: $filter) {
      nodes {
        id
        number
        status
        version
        supplier
        externalReference
        createdAt
        lines {
          sku
          locationCode
          quantity
          received
          outstanding
        }
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
`);
const SALES_ORDERS = graphql(`
  query ConsoleSalesOrders($first: Int!, $after: String, $filter: OrderFilter) {
    salesOrders(first: $first, after: $after, filter: $filter) {
      nodes {
        id
        number
        status
        version
        customer
        externalReference
        createdAt
        lines {
          sku
          locationCode
          quantity
          allocated
          shipped
          backordered
        }
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
`);
const TRANSFERS = graphql(`
  query ConsoleTransfers($first: Int!, $after: String, $filter: OrderFilter) {
    transfers(first: $first, after: $after, filter: $filter) {
      nodes {
        id
        number
        status
        version
        fromLocationCode
        toLocationCode
        externalReference
        createdAt
        lines {
          sku
          quantity
          inTransit
          received
        }
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
`);
const RETURNS = graphql(`
  query ConsoleReturns($first: Int!, $after: String, $filter: OrderFilter) {
    returnOrders(first: $first, after: $after, filter: $filter) {
      nodes {
        id
        number
        status
        version
        customer
        externalReference
        createdAt
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
`);
const RESERVATIONS = graphql(`
  query ConsoleReservations($first: Int!, $after: String, $filter: OrderFilter) {
    reservations(first: $first, after: $after, filter: $filter) {
      nodes {
        id
        number
        status
        version
        sku
        locationCode
        quantity
        expiresAt
        externalReference
        createdAt
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
`);

const SUBMIT_PO = graphql(`
  mutation ConsoleSubmitPo($id: ID!, $v: Int, $key: String) {
    submitPurchaseOrder(id: $id, expectedVersion: $v, idempotencyKey: $key) {
      userErrors {
        code
        field
        message
      }
    }
  }
`);
const RECEIVE_PO = graphql(`
  mutation ConsoleReceivePo($id: ID!, $v: Int, $key: String, $lines: [ReceiptLineInput!]!) {
    receivePurchaseOrder(id: $id, expectedVersion: $v, idempotencyKey: $key, lines: $lines) {
      userErrors {
        code
        field
        message
      }
    }
  }
`);
const CANCEL_PO = graphql(`
  mutation ConsoleCancelPo($id: ID!, $v: Int, $key: String) {
    cancelPurchaseOrder(id: $id, expectedVersion: $v, idempotencyKey: $key) {
      userErrors {
        code
        field
        message
      }
    }
  }
`);
const ALLOCATE_SO = graphql(`
  mutation ConsoleAllocateSo($id: ID!, $v: Int, $key: String, $partial: Boolean!) {
    allocateSalesOrder(id: $id, expectedVersion: $v, idempotencyKey: $key, partial: $partial) {
      userErrors {
        code
        field
        message
      }
    }
  }
`);
const SHIP_SO = graphql(`
  mutation ConsoleShipSo($id: ID!, $v: Int, $key: String) {
    shipSalesOrder(id: $id, expectedVersion: $v, idempotencyKey: $key) {
      userErrors {
        code
        field
        message
      }
    }
  }
`);
const CANCEL_SO = graphql(`
  mutation ConsoleCancelSo($id: ID!, $v: Int, $key: String) {
    cancelSalesOrder(id: $id, expectedVersion: $v, idempotencyKey: $key) {
      userErrors {
        code
        field
        message
      }
    }
  }
`);
const SHIP_TRANSFER = graphql(`
  mutation ConsoleShipTransfer($id: ID!, $v: Int, $key: String) {
    shipTransfer(id: $id, expectedVersion: $v, idempotencyKey: $key) {
      userErrors {
        code
        field
        message
      }
    }
  }
`);
const RECEIVE_TRANSFER = graphql(`
  mutation ConsoleReceiveTransfer($id: ID!, $v: Int, $key: String) {
    receiveTransfer(id: $id, expectedVersion: $v, idempotencyKey: $key) {
      userErrors {
        code
        field
        message
      }
    }
  }
`);
const CANCEL_TRANSFER = graphql(`
  mutation ConsoleCancelTransfer($id: ID!, $v: Int, $key: String) {
    cancelTransfer(id: $id, expectedVersion: $v, idempotencyKey: $key) {
      userErrors {
        code
        field
        message
      }
    }
  }
`);
const RECEIVE_RETURN = graphql(`
  mutation ConsoleReceiveReturn($id: ID!, $v: Int, $key: String) {
    receiveReturnOrder(id: $id, expectedVersion: $v, idempotencyKey: $key) {
      userErrors {
        code
        field
        message
      }
    }
  }
`);
const RELEASE_RESERVATION = graphql(`
  mutation ConsoleReleaseReservation($id: ID!, $v: Int, $key: String) {
    releaseReservation(id: $id, expectedVersion: $v, idempotencyKey: $key) {
      userErrors {
        code
        field
        message
      }
    }
  }
`);

const DOCUMENT = graphql(`
  query ConsoleDocument(
    $id: ID!
    $po: Boolean!
    $so: Boolean!
    $transfer: Boolean!
    $returnOrder: Boolean!
    $reservation: Boolean!
  ) {
    purchaseOrder(id: $id) @include(if: $po) {
      number
      status
      createdAt
      createdBy
      referenceDocumentUri
      movements {
        ...DocumentMovement
      }
    }
    salesOrder(id: $id) @include(if: $so) {
      number
      status
      createdAt
      createdBy
      referenceDocumentUri
      movements {
        ...DocumentMovement
      }
    }
    transfer(id: $id) @include(if: $transfer) {
      number
      status
      createdAt
      createdBy
      referenceDocumentUri
      movements {
        ...DocumentMovement
      }
    }
    returnOrder(id: $id) @include(if: $returnOrder) {
      number
      status
      createdAt
      createdBy
      referenceDocumentUri
      movements {
        ...DocumentMovement
      }
    }
    reservation(id: $id) @include(if: $reservation) {
      number
      status
      createdAt
      createdBy
      referenceDocumentUri
      movements {
        ...DocumentMovement
      }
    }
  }
`);

export const DOCUMENT_MOVEMENT = graphql(`
  fragment DocumentMovement on Movement {
    id
    sequence
    recordedAt
    sku
    locationCode
    state
    delta
    reason
    actor
  }
`);

const KINDS = ["Purchase orders", "Sales orders", "Transfers", "Returns", "Reservations"] as const;
type Kind = (typeof KINDS)[number];
const KIND_OF_TYPE: Record<string, Kind> = {
  PurchaseOrder: "Purchase orders",
  SalesOrder: "Sales orders",
  Transfer: "Transfers",
  ReturnOrder: "Returns",
  Reservation: "Reservations",
};

/** The document a movement links to (`?document=Type:id`), with every movement it made. */
function DocumentDetail({ type, id }: { type: string; id: string }) {
  const variables = {
    id,
    po: type === "PurchaseOrder",
    so: type === "SalesOrder",
    transfer: type === "Transfer",
    returnOrder: type === "ReturnOrder",
    reservation: type === "Reservation",
  };
  const [{ data, error }] = useQuery({ query: DOCUMENT, variables });
  const doc = data?.purchaseOrder ?? data?.salesOrder ?? data?.transfer ?? data?.returnOrder ?? data?.reservation;
  return (
    <section className="panel" aria-label="document">
      <ErrorBanner error={error} />
      {data && !doc && <p>No such document.</p>}
      {doc && (
        <>
          <h2>
            {doc.number}: {doc.status}
          </h2>
          <p className="muted">
            Created {when(doc.createdAt)} by {doc.createdBy} · {doc.referenceDocumentUri}
          </p>
          <Table head={["#", "Recorded", "SKU", "Location", "State", "Change", "Reason", "Actor"]}>
            {doc.movements.map((m) => (
              <tr key={m.id}>
                <td>{m.sequence}</td>
                <td>{when(m.recordedAt)}</td>
                <td>{m.sku}</td>
                <td>{m.locationCode}</td>
                <td>{m.state}</td>
                <td className={m.delta < 0 ? "negative" : "positive"}>{m.delta > 0 ? `+${m.delta}` : m.delta}</td>
                <td>{m.reason}</td>
                <td className="actor">{m.actor}</td>
              </tr>
            ))}
          </Table>
        </>
      )}
      <ShowGraphQL document={DOCUMENT} variables={variables} />
    </section>
  );
}

export function Orders() {
  const [type, documentId] = (new URLSearchParams(location.search).get("document") ?? "").split(":");
  const [kind, setKind] = useState<Kind>(KIND_OF_TYPE[type] ?? "Purchase orders");
  const [status, setStatus] = useState("");
  const [sku, setSku] = useState("");
  const [reference, setReference] = useState("");
  const pager = usePager();
  const filter = {
    statuses: status ? [status] : undefined,
    sku: sku || undefined,
    externalReference: reference || undefined,
  };
  const variables = { first: 20, after: pager.after, filter };
  return (
    <section aria-label="orders">
      {documentId && KIND_OF_TYPE[type] && <DocumentDetail type={type} id={documentId} />}
      <div role="tablist" aria-label="document kinds" className="tabs">
        {KINDS.map((k) => (
          <button key={k} role="tab" aria-selected={k === kind} type="button" onClick={() => (setKind(k), setStatus(""), pager.reset())}>
            {k}
          </button>
        ))}
      </div>
      <form className="filters" onSubmit={(e) => e.preventDefault()}>
        <Field label="Status">
          <input value={status} onChange={(e) => (setStatus(e.target.value.trim().toUpperCase()), pager.reset())} placeholder="e.g. DRAFT" />
        </Field>
        <Field label="SKU">
          <input value={sku} onChange={(e) => (setSku(e.target.value.trim()), pager.reset())} />
        </Field>
        <Field label="Reference">
          <input value={reference} onChange={(e) => (setReference(e.target.value.trim()), pager.reset())} />
        </Field>
      </form>
      {kind === "Purchase orders" && <PurchaseOrders variables={variables} pager={pager} />}
      {kind === "Sales orders" && <SalesOrders variables={variables} pager={pager} />}
      {kind === "Transfers" && <Transfers variables={variables} pager={pager} />}
      {kind === "Returns" && <Returns variables={variables} pager={pager} />}
      {kind === "Reservations" && <Reservations variables={variables} pager={pager} />}
    </section>
  );
}

type ListProps = { variables: { first: number; after: string | null; filter: object }; pager: ReturnType<typeof usePager> };

/** What the last transition of a list answered: its user errors, or its request failure. */
function useOutcome() {
  const [errors, setErrors] = useState<readonly UserErrorView[] | null>(null);
  const [failure, setFailure] = useState<Error | null>(null);
  return { errors, failure, setErrors, setFailure };
}

function Transition<V extends AnyVariables>(props: TransitionProps<V>) {
  return useCan().write ? <TransitionButton {...props} /> : null;
}

type TransitionProps<V extends AnyVariables> = {
  label: string;
  document: TypedDocumentNode<Record<string, { userErrors: UserErrorView[] }>, V>;
  variables: V;
  onDone: () => void;
  report: ReturnType<typeof useOutcome>;
};

function TransitionButton<V extends AnyVariables>({ label, document, variables, onDone, report }: TransitionProps<V>) {
  const [state, run] = useMutation(document);
  return (
    <button
      type="button"
      disabled={state.fetching}
      onClick={async () => {
        const response = await run(variables);
        report.setFailure(response.error ?? null);
        const payload = response.data ? Object.values(response.data)[0] : undefined;
        report.setErrors(payload?.userErrors ?? null);
        onDone();
      }}
    >
      {label}
    </button>
  );
}

function Table({ head, children }: { head: string[]; children: ReactNode }) {
  return (
    <div className="table-wrap">
      <table>
        <thead>
          <tr>
            {head.map((h) => (
              <th scope="col" key={h}>
                {h}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  );
}

function PurchaseOrders({ variables, pager }: ListProps) {
  const [{ data, error }, refetch] = useQuery({ query: PURCHASE_ORDERS, variables });
  const report = useOutcome();
  const refresh = () => refetch({ requestPolicy: "network-only" });
  return (
    <>
      <ErrorBanner error={error ?? report.failure} />
      <UserErrors errors={report.errors} />
      <Table head={["Number", "Status", "Supplier", "Lines", "Created", "Transitions"]}>
        {data?.purchaseOrders.nodes.map((o) => (
          <tr key={o.id}>
            <td>{o.number}</td>
            <td>{o.status}</td>
            <td>{o.supplier ?? ""}</td>
            <td>
              {o.lines.map((l) => (
                <div key={`${l.sku}@${l.locationCode}`}>
                  {l.sku} @ {l.locationCode}: {l.received}/{l.quantity} received
                </div>
              ))}
            </td>
            <td>{when(o.createdAt)}</td>
            <td className="actions-inline">
              {o.status === "DRAFT" && (
                <Transition label="Submit" document={SUBMIT_PO} variables={{ id: o.id, v: o.version, key: newKey() }} onDone={refresh} report={report} />
              )}
              {(o.status === "ORDERED" || o.status === "PARTIALLY_RECEIVED") && (
                <Transition
                  label="Receive all outstanding"
                  document={RECEIVE_PO}
                  variables={{
                    id: o.id,
                    v: o.version,
                    key: newKey(),
                    lines: o.lines.filter((l) => l.outstanding > 0).map((l) => ({ sku: l.sku, locationCode: l.locationCode, quantity: l.outstanding })),
                  }}
                  onDone={refresh}
                  report={report}
                />
              )}
              {o.status !== "RECEIVED" && o.status !== "CANCELLED" && (
                <Transition label="Cancel" document={CANCEL_PO} variables={{ id: o.id, v: o.version, key: newKey() }} onDone={refresh} report={report} />
              )}
            </td>
          </tr>
        ))}
      </Table>
      <Pager pager={pager} pageInfo={data?.purchaseOrders.pageInfo} />
      <ShowGraphQL document={PURCHASE_ORDERS} variables={variables} />
    </>
  );
}

function SalesOrders({ variables, pager }: ListProps) {
  const [{ data, error }, refetch] = useQuery({ query: SALES_ORDERS, variables });
  const report = useOutcome();
  const refresh = () => refetch({ requestPolicy: "network-only" });
  return (
    <>
      <ErrorBanner error={error ?? report.failure} />
      <UserErrors errors={report.errors} />
      <Table head={["Number", "Status", "Customer", "Lines", "Created", "Transitions"]}>
        {data?.salesOrders.nodes.map((o) => (
          <tr key={o.id}>
            <td>{o.number}</td>
            <td>{o.status}</td>
            <td>{o.customer ?? ""}</td>
            <td>
              {o.lines.map((l) => (
                <div key={`${l.sku}@${l.locationCode}`}>
                  {l.sku} @ {l.locationCode}: {l.allocated} allocated, {l.shipped} shipped, {l.backordered} backordered of{" "}
                  {l.quantity}
                </div>
              ))}
            </td>
            <td>{when(o.createdAt)}</td>
            <td className="actions-inline">
              {(o.status === "DRAFT" || o.status === "PARTIALLY_ALLOCATED") && (
                <>
                  <Transition label="Allocate" document={ALLOCATE_SO} variables={{ id: o.id, v: o.version, key: newKey(), partial: false }} onDone={refresh} report={report} />
                  <Transition label="Allocate what is there" document={ALLOCATE_SO} variables={{ id: o.id, v: o.version, key: newKey(), partial: true }} onDone={refresh} report={report} />
                </>
              )}
              {(o.status === "ALLOCATED" || o.status === "PARTIALLY_ALLOCATED" || o.status === "PARTIALLY_SHIPPED") && (
                <Transition label="Ship allocated" document={SHIP_SO} variables={{ id: o.id, v: o.version, key: newKey() }} onDone={refresh} report={report} />
              )}
              {o.status !== "SHIPPED" && o.status !== "CANCELLED" && (
                <Transition label="Cancel" document={CANCEL_SO} variables={{ id: o.id, v: o.version, key: newKey() }} onDone={refresh} report={report} />
              )}
            </td>
          </tr>
        ))}
      </Table>
      <Pager pager={pager} pageInfo={data?.salesOrders.pageInfo} />
      <ShowGraphQL document={SALES_ORDERS} variables={variables} />
    </>
  );
}

function Transfers({ variables, pager }: ListProps) {
  const [{ data, error }, refetch] = useQuery({ query: TRANSFERS, variables });
  const report = useOutcome();
  const refresh = () => refetch({ requestPolicy: "network-only" });
  return (
    <>
      <ErrorBanner error={error ?? report.failure} />
      <UserErrors errors={report.errors} />
      <Table head={["Number", "Status", "From → to", "Lines", "Created", "Transitions"]}>
        {data?.transfers.nodes.map((t) => (
          <tr key={t.id}>
            <td>{t.number}</td>
            <td>{t.status}</td>
            <td>
              {t.fromLocationCode} → {t.toLocationCode}
            </td>
            <td>
              {t.lines.map((l) => (
                <div key={l.sku}>
                  {l.sku}: {l.received}/{l.quantity} received, {l.inTransit} in transit
                </div>
              ))}
            </td>
            <td>{when(t.createdAt)}</td>
            <td className="actions-inline">
              {t.status === "DRAFT" && (
                <Transition label="Ship" document={SHIP_TRANSFER} variables={{ id: t.id, v: t.version, key: newKey() }} onDone={refresh} report={report} />
              )}
              {(t.status === "IN_TRANSIT" || t.status === "PARTIALLY_RECEIVED") && (
                <Transition label="Receive all" document={RECEIVE_TRANSFER} variables={{ id: t.id, v: t.version, key: newKey() }} onDone={refresh} report={report} />
              )}
              {t.status === "DRAFT" && (
                <Transition label="Cancel" document={CANCEL_TRANSFER} variables={{ id: t.id, v: t.version, key: newKey() }} onDone={refresh} report={report} />
              )}
            </td>
          </tr>
        ))}
      </Table>
      <Pager pager={pager} pageInfo={data?.transfers.pageInfo} />
      <ShowGraphQL document={TRANSFERS} variables={variables} />
    </>
  );
}

function Returns({ variables, pager }: ListProps) {
  const [{ data, error }, refetch] = useQuery({ query: RETURNS, variables });
  const report = useOutcome();
  const refresh = () => refetch({ requestPolicy: "network-only" });
  return (
    <>
      <ErrorBanner error={error ?? report.failure} />
      <UserErrors errors={report.errors} />
      <Table head={["Number", "Status", "Customer", "Reference", "Created", "Transitions"]}>
        {data?.returnOrders.nodes.map((r) => (
          <tr key={r.id}>
            <td>{r.number}</td>
            <td>{r.status}</td>
            <td>{r.customer ?? ""}</td>
            <td>{r.externalReference ?? ""}</td>
            <td>{when(r.createdAt)}</td>
            <td>
              {r.status === "DRAFT" && (
                <Transition label="Receive" document={RECEIVE_RETURN} variables={{ id: r.id, v: r.version, key: newKey() }} onDone={refresh} report={report} />
              )}
            </td>
          </tr>
        ))}
      </Table>
      <Pager pager={pager} pageInfo={data?.returnOrders.pageInfo} />
      <ShowGraphQL document={RETURNS} variables={variables} />
    </>
  );
}

function Reservations({ variables, pager }: ListProps) {
  const [{ data, error }, refetch] = useQuery({ query: RESERVATIONS, variables });
  const report = useOutcome();
  const refresh = () => refetch({ requestPolicy: "network-only" });
  return (
    <>
      <ErrorBanner error={error ?? report.failure} />
      <UserErrors errors={report.errors} />
      <Table head={["Number", "Status", "Item", "Quantity", "Expires", "Transitions"]}>
        {data?.reservations.nodes.map((r) => (
          <tr key={r.id}>
            <td>{r.number}</td>
            <td>{r.status}</td>
            <td>
              {r.sku} @ {r.locationCode}
            </td>
            <td>{r.quantity}</td>
            <td>{when(r.expiresAt)}</td>
            <td>
              {r.status === "ACTIVE" && (
                <Transition label="Release" document={RELEASE_RESERVATION} variables={{ id: r.id, v: r.version, key: newKey() }} onDone={refresh} report={report} />
              )}
            </td>
          </tr>
        ))}
      </Table>
      <Pager pager={pager} pageInfo={data?.reservations.pageInfo} />
      <ShowGraphQL document={RESERVATIONS} variables={variables} />
    </>
  );
}
