// Stock: levels by item and location with every quantity state, live; why available is lower
// than on hand; the ledger of one item at one location; adjust, move and set, each confirmed
// with the exact change.
import { useEffect, useState } from "react";
import { useMutation, useQuery, useSubscription } from "urql";
import { navigate } from "../App";
import { graphql } from "../gql";
import type { QuantityState, StockLevelsQuery } from "../gql/graphql";
import { useCan } from "../role";
import { Confirm, ErrorBanner, Field, Pager, ShowGraphQL, UserErrors, newKey, usePager, when } from "../ui";

export const LEVEL_FIELDS = graphql(`
  fragment LevelFields on StockLevel {
    sku
    locationCode
    onHand
    available
    committed
    reserved
    incoming
    qualityControl
    damaged
    safetyStock
    version
    updatedAt
  }
`);

const LEVELS = graphql(`
  query StockLevels($first: Int!, $after: String, $filter: StockLevelFilter) {
    stockLevels(first: $first, after: $after, filter: $filter) {
      nodes {
        ...LevelFields
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
`);

const CHANGED = graphql(`
  subscription StockChanged($sku: String, $locationCode: String) {
    stockChanged(sku: $sku, locationCode: $locationCode) {
      eventId
      level {
        ...LevelFields
      }
    }
  }
`);

const LEDGER = graphql(`
  query Ledger($filter: MovementFilter!, $first: Int!, $after: String) {
    movements(filter: $filter, first: $first, after: $after) {
      nodes {
        id
        sequence
        recordedAt
        reason
        state
        delta
        quantityAfterChange
        actor
        counterparty
        counterpartyLocationCode
        counterpartyState
        referenceDocumentUri
        document {
          __typename
          ... on PurchaseOrder {
            id
            number
          }
          ... on SalesOrder {
            id
            number
          }
          ... on Reservation {
            id
            number
          }
          ... on Transfer {
            id
            number
          }
          ... on ReturnOrder {
            id
            number
          }
        }
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
`);

const ADJUST = graphql(`
  mutation ConsoleAdjust($input: AdjustStockInput!, $key: String) {
    adjustStock(input: $input, idempotencyKey: $key) {
      levels {
        ...LevelFields
      }
      userErrors {
        code
        field
        message
      }
    }
  }
`);

const MOVE = graphql(`
  mutation ConsoleMove($input: MoveStockInput!, $key: String) {
    moveStock(input: $input, idempotencyKey: $key) {
      levels {
        ...LevelFields
      }
      userErrors {
        code
        field
        message
      }
    }
  }
`);

const SET = graphql(`
  mutation ConsoleSet($input: SetStockInput!, $key: String) {
    setStock(input: $input, idempotencyKey: $key) {
      levels {
        ...LevelFields
      }
      userErrors {
        code
        field
        message
      }
    }
  }
`);

type Level = StockLevelsQuery["stockLevels"]["nodes"][number];
const STATES: { key: keyof Level; state: QuantityState; label: string }[] = [
  { key: "available", state: "AVAILABLE", label: "Available" },
  { key: "committed", state: "COMMITTED", label: "Committed" },
  { key: "reserved", state: "RESERVED", label: "Reserved" },
  { key: "qualityControl", state: "QUALITY_CONTROL", label: "Quality control" },
  { key: "damaged", state: "DAMAGED", label: "Damaged" },
  { key: "safetyStock", state: "SAFETY_STOCK", label: "Safety stock" },
];
const id = (l: { sku: string; locationCode: string }) => `${l.sku}@${l.locationCode}`;

export function Stock() {
  const [sku, setSku] = useState("");
  const [locationCode, setLocationCode] = useState("");
  const pager = usePager();
  const filter = { sku: sku || undefined, locationCode: locationCode || undefined };
  const variables = { first: 25, after: pager.after, filter };
  const [{ data, error, fetching }] = useQuery({ query: LEVELS, variables });
  const [live, setLive] = useState<Record<string, Level>>({});
  const [flash, setFlash] = useState<string | null>(null);
  const [selected, setSelected] = useState<Level | null>(null);
  const [change, setChange] = useState<"adjust" | "move" | "set" | null>(null);
  const can = useCan();

  useEffect(() => setLive({}), [data]);
  const [{ error: liveError }] = useSubscription(
    { query: CHANGED, variables: { sku: filter.sku, locationCode: filter.locationCode } },
    (_, event) => {
      const level = event.stockChanged.level;
      setLive((current) => ({ ...current, [id(level)]: level }));
      setFlash(id(level));
      return event;
    },
  );

  const rows: Level[] = (data?.stockLevels.nodes ?? []).map((l) => live[id(l)] ?? l);
  // Levels that appeared since the page loaded (a first stock change) join the first page.
  if (pager.page === 1) {
    for (const level of Object.values(live)) {
      if (!rows.some((r) => id(r) === id(level))) rows.unshift(level);
    }
  }
  const current = selected ? (rows.find((r) => id(r) === id(selected)) ?? selected) : null;

  return (
    <section aria-label="stock">
      <form className="filters" onSubmit={(e) => e.preventDefault()}>
        <Field label="SKU">
          <input value={sku} onChange={(e) => (setSku(e.target.value.trim()), pager.reset())} />
        </Field>
        <Field label="Location">
          <input value={locationCode} onChange={(e) => (setLocationCode(e.target.value.trim()), pager.reset())} />
        </Field>
        <span className="live" aria-live="polite">
          {liveError ? "Live updates paused" : "Live"}
        </span>
        {can.write && (
          <>
            <button type="button" onClick={() => setChange("adjust")}>
              Adjust
            </button>
            <button type="button" onClick={() => setChange("move")}>
              Move
            </button>
            <button type="button" onClick={() => setChange("set")}>
              Set
            </button>
          </>
        )}
      </form>
      <ErrorBanner error={error} />
      <div className="table-wrap">
        <table>
          <caption className="sr-only">Stock levels</caption>
          <thead>
            <tr>
              <th scope="col">SKU</th>
              <th scope="col">Location</th>
              <th scope="col">On hand</th>
              {STATES.map((s) => (
                <th scope="col" key={s.key}>
                  {s.label}
                </th>
              ))}
              <th scope="col">Incoming</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((level) => (
              <tr
                key={id(level)}
                data-level={id(level)}
                className={[flash === id(level) ? "flash" : "", current && id(current) === id(level) ? "selected" : ""].join(" ")}
              >
                <td>
                  <button type="button" className="link" onClick={() => setSelected(level)}>
                    {level.sku}
                  </button>
                </td>
                <td>{level.locationCode}</td>
                <td data-state="onHand">{level.onHand}</td>
                {STATES.map((s) => (
                  <td key={s.key} data-state={s.key}>
                    {String(level[s.key])}
                  </td>
                ))}
                <td data-state="incoming">{level.incoming}</td>
              </tr>
            ))}
            {!fetching && rows.length === 0 && (
              <tr>
                <td colSpan={10}>No stock yet. Adjust to record the first units.</td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      <Pager pager={pager} pageInfo={data?.stockLevels.pageInfo} />
      <ShowGraphQL document={LEVELS} variables={variables} />
      {current && <LevelDetail level={current} onClose={() => setSelected(null)} />}
      {change && <ChangeDialog kind={change} levels={rows} preset={current} onClose={() => setChange(null)} />}
    </section>
  );
}

/** Why available is lower than on hand, and the ledger behind the level. */
function LevelDetail({ level, onClose }: { level: Level; onClose: () => void }) {
  const pager = usePager();
  const variables = { filter: { sku: level.sku, locationCode: level.locationCode }, first: 20, after: pager.after };
  const [{ data, error }] = useQuery({ query: LEDGER, variables });
  const holding = STATES.filter((s) => s.key !== "available" && Number(level[s.key]) !== 0);
  return (
    <section className="panel" aria-label={`ledger of ${level.sku} at ${level.locationCode}`}>
      <header className="panel-head">
        <h2>
          {level.sku} at {level.locationCode}
        </h2>
        <button type="button" onClick={onClose}>
          Close
        </button>
      </header>
      <p className="why">
        {level.onHand === level.available ? (
          <>All {level.onHand} on hand are available.</>
        ) : (
          <>
            Available ({level.available}) is {level.onHand - level.available} lower than on hand ({level.onHand}):{" "}
            {holding.map((s, i) => (
              <span key={s.key}>
                {i > 0 && ", "}
                {String(level[s.key])} {s.label.toLowerCase()}
              </span>
            ))}
            .
          </>
        )}
        {level.incoming > 0 && <> {level.incoming} more are incoming (not on hand yet).</>}
      </p>
      <ErrorBanner error={error} />
      <div className="table-wrap">
        <table>
          <caption>Ledger, in the order it was written</caption>
          <thead>
            <tr>
              <th scope="col">#</th>
              <th scope="col">Recorded</th>
              <th scope="col">Reason</th>
              <th scope="col">State</th>
              <th scope="col">Change</th>
              <th scope="col">After</th>
              <th scope="col">From / to</th>
              <th scope="col">Actor</th>
              <th scope="col">Document</th>
            </tr>
          </thead>
          <tbody>
            {data?.movements.nodes.map((m) => (
              <tr key={m.id}>
                <td>{m.sequence}</td>
                <td>{when(m.recordedAt)}</td>
                <td>{m.reason}</td>
                <td>{m.state}</td>
                <td className={m.delta < 0 ? "negative" : "positive"}>{m.delta > 0 ? `+${m.delta}` : m.delta}</td>
                <td>{m.quantityAfterChange}</td>
                <td>
                  {m.counterparty}
                  {m.counterpartyLocationCode ? ` ${m.counterpartyLocationCode}` : ""}
                  {m.counterpartyState ? ` ${m.counterpartyState}` : ""}
                </td>
                <td className="actor">{m.actor}</td>
                <td>
                  {m.document ? (
                    <a
                      href={`/console/orders?document=${m.document.__typename}:${m.document.id}`}
                      onClick={(e) => {
                        e.preventDefault();
                        navigate(`orders?document=${m.document!.__typename}:${m.document!.id}`);
                      }}
                    >
                      {m.document.number}
                    </a>
                  ) : (
                    (m.referenceDocumentUri ?? "")
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <Pager pager={pager} pageInfo={data?.movements.pageInfo} />
      <ShowGraphQL document={LEDGER} variables={variables} />
    </section>
  );
}

const REASONS = ["CORRECTION", "RECEIVED", "SHRINKAGE", "DAMAGED", "CYCLE_COUNT", "RETURN", "PROMOTION", "OTHER"] as const;

function ChangeDialog({
  kind,
  levels,
  preset,
  onClose,
}: {
  kind: "adjust" | "move" | "set";
  levels: Level[];
  preset: Level | null;
  onClose: () => void;
}) {
  const [sku, setSku] = useState(preset?.sku ?? "");
  const [location, setLocation] = useState(preset?.locationCode ?? "");
  const [toLocation, setToLocation] = useState("");
  const [quantity, setQuantity] = useState("");
  const [state, setState] = useState<QuantityState>("AVAILABLE");
  const [reason, setReason] = useState<(typeof REASONS)[number]>("CORRECTION");
  const [confirming, setConfirming] = useState(false);
  const [key] = useState(newKey);
  const [adjust, runAdjust] = useMutation(ADJUST);
  const [move, runMove] = useMutation(MOVE);
  const [set, runSet] = useMutation(SET);
  const [done, setDone] = useState(false);

  const amount = Number.parseInt(quantity, 10);
  const valid = sku !== "" && location !== "" && Number.isSafeInteger(amount) && (kind !== "move" || toLocation !== "");
  const stateKey = STATES.find((s) => s.state === state)?.key ?? "available";
  const before = (code: string) => {
    const level = levels.find((l) => l.sku === sku && l.locationCode === code);
    return level ? Number(level[stateKey]) : undefined;
  };
  const from = before(location);
  const payload = adjust.data?.adjustStock ?? move.data?.moveStock ?? set.data?.setStock;
  const busy = adjust.fetching || move.fetching || set.fetching;
  const requestError = adjust.error ?? move.error ?? set.error;

  const submit = async () => {
    let errors;
    if (kind === "adjust") {
      const response = await runAdjust({
        key,
        input: { reason, changes: [{ sku, locationCode: location, delta: amount, state }] },
      });
      errors = response.error ? undefined : response.data?.adjustStock.userErrors;
    } else if (kind === "move") {
      const response = await runMove({
        key,
        input: {
          changes: [{ sku, quantity: amount, from: { locationCode: location, state }, to: { locationCode: toLocation, state } }],
        },
      });
      errors = response.error ? undefined : response.data?.moveStock.userErrors;
    } else {
      const response = await runSet({
        key,
        input: {
          changes: [
            // The count is checked against what the screen showed: a sale in between is not erased.
            { sku, locationCode: location, quantity: amount, state, changeFromQuantity: from ?? undefined },
          ],
        },
      });
      errors = response.error ? undefined : response.data?.setStock.userErrors;
    }
    setConfirming(false);
    if (errors && errors.length === 0) setDone(true);
  };

  const summary = (() => {
    if (!valid) return "";
    if (kind === "adjust") {
      const after = from !== undefined ? ` (${from} → ${from + amount})` : "";
      return `${state} of ${sku} at ${location}: ${amount > 0 ? "+" : ""}${amount}${after}, reason ${reason}`;
    }
    if (kind === "move") {
      const to = before(toLocation);
      return `${amount} × ${sku} ${state}: ${location}${from !== undefined ? ` (${from} → ${from - amount})` : ""} to ${toLocation}${
        to !== undefined ? ` (${to} → ${to + amount})` : ""
      }`;
    }
    return `${state} of ${sku} at ${location}: ${from ?? "?"} → ${amount}${from !== undefined ? ` (${amount - from >= 0 ? "+" : ""}${amount - from})` : ""}, as a cycle count`;
  })();

  return (
    <div className="backdrop">
      <div className="dialog" role="dialog" aria-modal="true" aria-labelledby="change-title">
        <h2 id="change-title">{kind === "adjust" ? "Adjust stock" : kind === "move" ? "Move stock" : "Set stock (count)"}</h2>
        {done ? (
          <>
            <p role="status">Done: {summary}.</p>
            <div className="actions">
              <button type="button" className="primary" autoFocus onClick={onClose}>
                Close
              </button>
            </div>
          </>
        ) : (
          <form
            onSubmit={(e) => {
              e.preventDefault();
              if (valid) setConfirming(true);
            }}
          >
            <Field label="SKU">
              <input autoFocus value={sku} onChange={(e) => setSku(e.target.value.trim())} required />
            </Field>
            <Field label={kind === "move" ? "From location" : "Location"}>
              <input value={location} onChange={(e) => setLocation(e.target.value.trim())} required />
            </Field>
            {kind === "move" && (
              <Field label="To location">
                <input value={toLocation} onChange={(e) => setToLocation(e.target.value.trim())} required />
              </Field>
            )}
            <Field label={kind === "adjust" ? "Change (+ or −)" : "Quantity"}>
              <input inputMode="numeric" value={quantity} onChange={(e) => setQuantity(e.target.value.trim())} required />
            </Field>
            <Field label="State">
              <select value={state} onChange={(e) => setState(e.target.value as QuantityState)}>
                {STATES.map((s) => (
                  <option key={s.state} value={s.state}>
                    {s.label}
                  </option>
                ))}
              </select>
            </Field>
            {kind === "adjust" && (
              <Field label="Reason">
                <select value={reason} onChange={(e) => setReason(e.target.value as (typeof REASONS)[number])}>
                  {REASONS.map((r) => (
                    <option key={r}>{r}</option>
                  ))}
                </select>
              </Field>
            )}
            <ErrorBanner error={requestError} />
            <UserErrors errors={payload?.userErrors} />
            <div className="actions">
              <button type="button" onClick={onClose}>
                Cancel
              </button>
              <button type="submit" className="primary" disabled={!valid || busy}>
                Review
              </button>
            </div>
          </form>
        )}
      </div>
      {confirming && (
        <Confirm title="Confirm the change" onConfirm={submit} onCancel={() => setConfirming(false)} busy={busy}>
          <p className="exact-change">{summary}</p>
        </Confirm>
      )}
    </div>
  );
}
