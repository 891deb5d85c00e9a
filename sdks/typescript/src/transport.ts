// The HTTP core: one POST per attempt to /graphql with fetch, a timeout per attempt, and retries
// with capped exponential backoff and full jitter for failures that are safe to repeat.

import {
  ConnectionError,
  TimeoutError,
  type TwhError,
  requestErrorFor,
  type GraphQLErrorEntry,
  type TwhErrorCode,
} from "./errors.js";
import { VERSION } from "./version.js";

export interface ClientOptions {
  /**
   * The API key (`twh_test_…` or `twh_live_…`), sent as `Authorization: Bearer <key>`.
   * Default: the `TWH_API_KEY` environment variable.
   */
  apiKey?: string | undefined;
  /**
   * The server's root URL (or its `/graphql` URL). Default: the `TWH_URL` environment variable,
   * else `http://127.0.0.1:8080`.
   */
  baseUrl?: string | undefined;
  /** How long one attempt may take, in milliseconds, before it is aborted. Default 30000. */
  timeoutMs?: number;
  /** How many times a failed call is retried when that is safe. Default 3; 0 turns retries off. */
  maxRetries?: number;
  /** The first backoff ceiling, doubled on every retry. Default 500 ms. */
  retryBaseDelayMs?: number;
  /** The cap of any wait between attempts, `Retry-After` included. Default 10000 ms. */
  retryMaxDelayMs?: number;
  /** A `fetch` implementation; default `globalThis.fetch`. */
  fetch?: typeof fetch;
  /** Extra headers sent with every request. */
  headers?: Record<string, string>;
}

/** Options every call takes. */
export interface RequestOptions {
  /** Aborts the call (and any wait between retries). */
  signal?: AbortSignal;
  /** Overrides the client's `timeoutMs` for this call. */
  timeoutMs?: number;
  /** Overrides the client's `maxRetries` for this call. */
  maxRetries?: number;
}

/** Options of a mutation that takes an idempotency key. */
export interface MutationOptions extends RequestOptions {
  /**
   * Makes the call safe to repeat: the server applies a key at most once and replays the first
   * answer. One is generated (a random UUID) when none is given, and the same key is sent on
   * every retry of the call. Pass your own to make retries across processes safe too.
   */
  idempotencyKey?: string;
}

export interface ExecuteOptions extends RequestOptions {
  /** Whether the call may be sent again after a failure whose outcome is unknown. */
  retryable: boolean;
  /** Sent as the `Idempotency-Key` header (the variables carry it for the server). */
  idempotencyKey?: string;
  /** Asks for another attempt after a successful response (e.g. a key still in flight). */
  retryOnData?: (data: unknown) => boolean;
}

export interface ExecuteResult<T> {
  data: T;
  requestId: string | null;
  status: number;
  /** How many attempts the call took (1 when it succeeded at once). */
  attempts: number;
}

const DEFAULTS = {
  baseUrl: "http://127.0.0.1:8080",
  timeoutMs: 30_000,
  maxRetries: 3,
  retryBaseDelayMs: 500,
  retryMaxDelayMs: 10_000,
};

/** The code of a failure whose body names none (e.g. a proxy's own 503), from its HTTP status. */
const STATUS_CODES: Record<number, TwhErrorCode> = {
  400: "BAD_REQUEST",
  401: "UNAUTHENTICATED",
  403: "FORBIDDEN",
  404: "NOT_FOUND",
  413: "PAYLOAD_TOO_LARGE",
  415: "UNSUPPORTED_MEDIA_TYPE",
  429: "RATE_LIMITED",
  500: "INTERNAL",
  503: "UNAVAILABLE",
};

/** Reads `Retry-After` (delay-seconds or an HTTP date) as milliseconds from now. */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | null {
  if (value == null) return null;
  const raw = value.trim();
  if (/^\d+$/.test(raw)) return Number(raw) * 1000;
  const at = Date.parse(raw);
  if (Number.isNaN(at)) return null;
  return Math.max(0, at - now);
}

/** Full jitter: a uniformly random wait between 0 and the capped exponential ceiling. */
export function backoffDelay(retry: number, baseMs: number, capMs: number): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** retry);
  return Math.random() * ceiling;
}

function graphqlUrl(baseUrl: string): string {
  const trimmed = baseUrl.replace(/\/+$/, "");
  return trimmed.endsWith("/graphql") ? trimmed : `${trimmed}/graphql`;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

interface GraphQLResponseBody {
  data?: unknown;
  errors?: GraphQLErrorEntry[];
}

/** A failure worth another attempt, and how long the server asked us to wait first. */
class Retryable {
  constructor(
    readonly error: TwhError | null,
    readonly retryAfterMs: number | null,
    /** What to return instead of throwing when no retry is left. */
    readonly fallback: Omit<ExecuteResult<unknown>, "attempts"> | null = null,
  ) {}
}

export class Transport {
  readonly url: string;
  private readonly apiKey: string;
  private readonly timeoutMs: number;
  private readonly maxRetries: number;
  private readonly retryBaseDelayMs: number;
  private readonly retryMaxDelayMs: number;
  private readonly fetchImpl: typeof fetch;
  private readonly extraHeaders: Record<string, string>;

  constructor(options: ClientOptions = {}) {
    const apiKey = options.apiKey ?? process.env["TWH_API_KEY"];
    if (typeof apiKey !== "string" || apiKey === "") {
      throw new TypeError("TwhClient needs an apiKey (pass one, or set TWH_API_KEY)");
    }
    this.apiKey = apiKey;
    this.url = graphqlUrl(options.baseUrl || process.env["TWH_URL"] || DEFAULTS.baseUrl);
    this.timeoutMs = options.timeoutMs ?? DEFAULTS.timeoutMs;
    this.maxRetries = Math.max(0, options.maxRetries ?? DEFAULTS.maxRetries);
    this.retryBaseDelayMs = options.retryBaseDelayMs ?? DEFAULTS.retryBaseDelayMs;
    this.retryMaxDelayMs = options.retryMaxDelayMs ?? DEFAULTS.retryMaxDelayMs;
    this.fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.extraHeaders = { ...(options.headers ?? {}) };
  }

  async execute<T>(query: string, variables: Record<string, unknown> | undefined, options: ExecuteOptions): Promise<ExecuteResult<T>> {
    const maxRetries = Math.max(0, options.maxRetries ?? this.maxRetries);
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    const headers: Record<string, string> = {
      ...this.extraHeaders,
      Authorization: `Bearer ${this.apiKey}`,
      Accept: "application/graphql-response+json",
      "Content-Type": "application/json",
      "User-Agent": `twh-sdk-typescript/${VERSION} node/${process.versions.node}`,
    };
    if (options.idempotencyKey !== undefined) headers["Idempotency-Key"] = options.idempotencyKey;
    const body = JSON.stringify(variables === undefined ? { query } : { query, variables });

    for (let attempt = 1; ; attempt++) {
      const outcome = await this.attempt<T>(body, headers, timeoutMs, options);
      if (!(outcome instanceof Retryable)) return { ...outcome, attempts: attempt };
      const retriesLeft = options.retryable && attempt <= maxRetries;
      if (!retriesLeft) {
        if (outcome.fallback) return { ...(outcome.fallback as Omit<ExecuteResult<T>, "attempts">), attempts: attempt };
        throw outcome.error;
      }
      const wait =
        outcome.retryAfterMs !== null
          ? Math.min(outcome.retryAfterMs, this.retryMaxDelayMs)
          : backoffDelay(attempt - 1, this.retryBaseDelayMs, this.retryMaxDelayMs);
      await sleep(wait, options.signal);
    }
  }

  /** One HTTP exchange: a result, a thrown final error, or a `Retryable`. */
  private async attempt<T>(
    body: string,
    headers: Record<string, string>,
    timeoutMs: number,
    options: ExecuteOptions,
  ): Promise<Omit<ExecuteResult<T>, "attempts"> | Retryable> {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const userSignal = options.signal;
    const onUserAbort = () => controller.abort(userSignal?.reason);
    if (userSignal?.aborted) onUserAbort();
    else userSignal?.addEventListener("abort", onUserAbort, { once: true });

    let response: Response;
    let text: string;
    try {
      response = await this.fetchImpl(this.url, { method: "POST", headers, body, signal: controller.signal });
      text = await response.text();
    } catch (cause) {
      if (userSignal?.aborted) throw userSignal.reason;
      const error = timedOut
        ? new TimeoutError({ code: "TIMEOUT", message: `no answer from ${this.url} within ${timeoutMs} ms`, cause })
        : new ConnectionError({
            code: "CONNECTION_ERROR",
            message: `could not reach ${this.url}: ${describe(cause)}`,
            cause,
          });
      return new Retryable(error, null);
    } finally {
      clearTimeout(timer);
      userSignal?.removeEventListener("abort", onUserAbort);
    }

    const status = response.status;
    const requestIdHeader = response.headers.get("x-request-id");
    const retryAfterMs = parseRetryAfter(response.headers.get("retry-after"));

    let parsed: GraphQLResponseBody | null = null;
    try {
      const value: unknown = JSON.parse(text);
      if (value !== null && typeof value === "object" && !Array.isArray(value)) parsed = value as GraphQLResponseBody;
    } catch {
      parsed = null;
    }

    const errors = Array.isArray(parsed?.errors) ? parsed.errors : [];
    if (errors.length > 0 || parsed === null || parsed.data == null) {
      const first = errors[0];
      const code = (first?.extensions?.code as TwhErrorCode | undefined) ?? STATUS_CODES[status] ?? "UNEXPECTED_RESPONSE";
      const requestId = requestIdHeader ?? first?.extensions?.requestId ?? null;
      const message =
        first?.message ??
        (parsed === null
          ? `HTTP ${status} from ${this.url} with a body that is not a GraphQL response`
          : `HTTP ${status} from ${this.url} without data`);
      const error = requestErrorFor({ code, message, requestId, status, errors, retryAfterMs });
      const transient =
        status === 429 || status === 503 || code === "RATE_LIMITED" || code === "UNAVAILABLE";
      if (transient) return new Retryable(error, retryAfterMs);
      throw error;
    }

    const result = { data: parsed.data as T, requestId: requestIdHeader, status };
    if (options.retryOnData?.(parsed.data)) return new Retryable(null, retryAfterMs, result);
    return result;
  }
}

function describe(cause: unknown): string {
  if (cause instanceof Error) {
    const inner = (cause as { cause?: unknown }).cause;
    return inner instanceof Error ? `${cause.message} (${inner.message})` : cause.message;
  }
  return String(cause);
}
