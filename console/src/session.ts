// The console's session: signed in with an API key (or the operator's admin token) exchanged
// for an HttpOnly cookie the script never sees; every request repeats the session's CSRF token.

export type Session = {
  kind: "tenant" | "operator";
  tenantId: string | null;
  role: string | null;
  expiresAt: string;
  csrfToken: string;
};

/** A refusal with the API's code, as every error is shown: code, message and hint. */
export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

let csrfToken = "";

export function csrfHeaders(): Record<string, string> {
  return csrfToken ? { "X-CSRF-Token": csrfToken } : {};
}

async function errorOf(response: Response): Promise<ApiError> {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    // REST answers problem documents; GraphQL and the session endpoints, `errors`.
    if (typeof body.code === "string") return new ApiError(body.code, body.detail ?? body.title ?? text, response.status);
    const first = body.errors?.[0];
    if (first) return new ApiError(first.extensions?.code ?? "ERROR", first.message, response.status);
  } catch {
    // not JSON: shown as it came
  }
  return new ApiError(`HTTP_${response.status}`, text || response.statusText, response.status);
}

function remember(session: Session): Session {
  csrfToken = session.csrfToken;
  return session;
}

/** The current session, or null when not signed in (or it ended). */
export async function currentSession(): Promise<Session | null> {
  const response = await fetch("/console/session", { credentials: "same-origin" });
  if (response.status === 401) return null;
  if (!response.ok) throw await errorOf(response);
  return remember(await response.json());
}

export async function signIn(credential: { apiKey: string } | { adminToken: string }): Promise<Session> {
  const response = await fetch("/console/session", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(credential),
  });
  if (!response.ok) throw await errorOf(response);
  return remember(await response.json());
}

export async function signOut(): Promise<void> {
  await fetch("/console/session", { method: "DELETE", credentials: "same-origin", headers: csrfHeaders() });
  csrfToken = "";
}

/** Uploads a file as an artifact (`POST /v1/artifacts`); returns its id. */
export async function uploadArtifact(file: File): Promise<{ id: string; name: string; sizeBytes: number }> {
  const response = await fetch(`/v1/artifacts?name=${encodeURIComponent(file.name)}`, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": file.type || "text/csv", ...csrfHeaders() },
    body: file,
  });
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

/** Downloads an artifact through a request that carries the CSRF token, then saves it. */
export async function downloadArtifact(id: string, name: string): Promise<void> {
  const response = await fetch(`/v1/artifacts/${encodeURIComponent(id)}`, {
    credentials: "same-origin",
    headers: csrfHeaders(),
  });
  if (!response.ok) throw await errorOf(response);
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
