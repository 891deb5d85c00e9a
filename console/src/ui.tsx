// Pieces every screen shares: errors with their code and hint, user errors, pagination,
// confirmation, and "show me the GraphQL".
import { print, type DocumentNode } from "graphql";
import { useEffect, useRef, useState, type ReactNode } from "react";
import type { CombinedError } from "urql";
import { ApiError } from "./session";

/** Splits "message - Hint: hint" the way the API writes hints. */
function hinted(message: string): { message: string; hint?: string } {
  const at = message.indexOf(" - Hint: ");
  return at < 0 ? { message } : { message: message.slice(0, at), hint: message.slice(at + 9) };
}

export function errorEntries(error: CombinedError | ApiError | Error): { code: string; message: string }[] {
  if (error instanceof ApiError) return [{ code: error.code, message: error.message }];
  const combined = error as CombinedError;
  if (combined.graphQLErrors?.length) {
    return combined.graphQLErrors.map((e) => ({
      code: String(e.extensions?.code ?? "ERROR"),
      message: e.message,
    }));
  }
  if (combined.networkError) return [{ code: "NETWORK", message: combined.networkError.message }];
  return [{ code: "ERROR", message: error.message }];
}

export function ErrorBanner({ error }: { error?: CombinedError | ApiError | Error | null }) {
  if (!error) return null;
  return (
    <div className="error" role="alert">
      {errorEntries(error).map((entry, i) => {
        const { message, hint } = hinted(entry.message);
        return (
          <p key={i}>
            <code className="code">{entry.code}</code> {message}
            {hint && <span className="hint"> Hint: {hint}</span>}
          </p>
        );
      })}
    </div>
  );
}

export type UserErrorView = { code: string; message: string; field?: readonly string[] | null };

export function UserErrors({ errors }: { errors?: readonly UserErrorView[] | null }) {
  if (!errors?.length) return null;
  return (
    <div className="error" role="alert">
      {errors.map((e, i) => {
        const { message, hint } = hinted(e.message);
        return (
          <p key={i}>
            <code className="code">{e.code}</code> {e.field?.length ? <em>{e.field.join(".")}: </em> : null}
            {message}
            {hint && <span className="hint"> Hint: {hint}</span>}
          </p>
        );
      })}
    </div>
  );
}

export type PageInfoView = { hasNextPage: boolean; endCursor?: string | null };

/** Cursor pagination: a stack of cursors so "Previous" goes back exactly. */
export function usePager() {
  const [stack, setStack] = useState<(string | null)[]>([null]);
  const after = stack[stack.length - 1];
  return {
    after,
    page: stack.length,
    reset: () => setStack([null]),
    next: (cursor: string | null | undefined) => cursor && setStack((s) => [...s, cursor]),
    previous: () => setStack((s) => (s.length > 1 ? s.slice(0, -1) : s)),
  };
}

export function Pager({ pager, pageInfo }: { pager: ReturnType<typeof usePager>; pageInfo?: PageInfoView }) {
  return (
    <nav className="pager" aria-label="pages">
      <button type="button" disabled={pager.page <= 1} onClick={pager.previous}>
        Previous
      </button>
      <span>Page {pager.page}</span>
      <button type="button" disabled={!pageInfo?.hasNextPage} onClick={() => pager.next(pageInfo?.endCursor)}>
        Next
      </button>
    </nav>
  );
}

/** The query a screen ran, ready to paste into GraphiQL. */
export function ShowGraphQL({ document, variables }: { document: DocumentNode; variables?: object }) {
  const text = print(document);
  const vars = JSON.stringify(variables ?? {}, null, 2);
  return (
    <details className="show-graphql">
      <summary>Show me the GraphQL</summary>
      <pre aria-label="query">{text}</pre>
      <pre aria-label="variables">{vars}</pre>
      <p>
        <button type="button" onClick={() => navigator.clipboard?.writeText(text)}>
          Copy query
        </button>{" "}
        <a href="/graphql" target="_blank" rel="noreferrer">
          Open GraphiQL
        </a>
      </p>
    </details>
  );
}

/** A modal confirmation that states the exact change before it is made. */
export function Confirm({
  title,
  children,
  onConfirm,
  onCancel,
  busy,
}: {
  title: string;
  children: ReactNode;
  onConfirm: () => void;
  onCancel: () => void;
  busy?: boolean;
}) {
  const confirmRef = useRef<HTMLButtonElement>(null);
  useEffect(() => confirmRef.current?.focus(), []);
  return (
    <div className="backdrop" onKeyDown={(e) => e.key === "Escape" && onCancel()}>
      <div className="dialog" role="dialog" aria-modal="true" aria-labelledby="confirm-title">
        <h2 id="confirm-title">{title}</h2>
        {children}
        <div className="actions">
          <button type="button" onClick={onCancel}>
            Cancel
          </button>
          <button type="button" className="primary" ref={confirmRef} disabled={busy} onClick={onConfirm}>
            Confirm
          </button>
        </div>
      </div>
    </div>
  );
}

export function Field({ label, children }: { label: string; children: ReactNode }) {
  return (
    <label className="field">
      <span>{label}</span>
      {children}
    </label>
  );
}

export function when(at?: string | null): string {
  return at ? new Date(at).toLocaleString() : "";
}

export function newKey(): string {
  return crypto.randomUUID();
}
