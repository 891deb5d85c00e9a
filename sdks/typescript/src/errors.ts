import type { ErrorCode } from "./generated/graphql.js";

/** One entry of a mutation payload's `userErrors`. */
export interface UserError {
  code: ErrorCode;
  /** Path to the input field at fault, e.g. `["input", "changes", "0", "sku"]`. */
  field: string[] | null;
  message: string;
}

/** One entry of a GraphQL response's top-level `errors`. */
export interface GraphQLErrorEntry {
  message: string;
  path?: ReadonlyArray<string | number>;
  locations?: ReadonlyArray<{ line: number; column: number }>;
  extensions?: { code?: string; requestId?: string; [key: string]: unknown };
}

/**
 * A code the server returns (see the `ErrorCode` enum of the schema), or one of the SDK's own:
 * `CONNECTION_ERROR` (the server could not be reached, or the connection broke),
 * `TIMEOUT` (no answer within `timeoutMs`), `UNEXPECTED_RESPONSE` (not a GraphQL response).
 */
export type TwhErrorCode = ErrorCode | "CONNECTION_ERROR" | "TIMEOUT" | "UNEXPECTED_RESPONSE";

export interface TwhErrorInit {
  code: TwhErrorCode;
  message: string;
  field?: string[] | null;
  requestId?: string | null;
  status?: number | null;
  cause?: unknown;
}

/** The base class of every error the SDK throws. */
export class TwhError extends Error {
  /** Stable machine-readable code, e.g. `UNAUTHENTICATED` or `INSUFFICIENT_STOCK`. */
  readonly code: TwhErrorCode;
  /** Path to the input field at fault, when the server named one. */
  readonly field: string[] | null;
  /** The server's request id (`x-request-id`), to quote when reporting a problem. */
  readonly requestId: string | null;
  /** The HTTP status of the last response, when there was one. */
  readonly status: number | null;

  constructor(init: TwhErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = new.target.name;
    this.code = init.code;
    this.field = init.field ?? null;
    this.requestId = init.requestId ?? null;
    this.status = init.status ?? null;
  }
}

/** The server could not be reached or the connection broke, on every attempt. */
export class ConnectionError extends TwhError {}

/** No answer came within `timeoutMs`, on every attempt. */
export class TimeoutError extends TwhError {}

/**
 * A request-level failure: the server refused or failed the whole request and answered with
 * top-level GraphQL `errors` carrying `extensions.code`.
 */
export class RequestError extends TwhError {
  /** Every entry of the response's top-level `errors`. */
  readonly errors: GraphQLErrorEntry[];

  constructor(init: TwhErrorInit & { errors?: GraphQLErrorEntry[] }) {
    super(init);
    this.errors = init.errors ?? [];
  }
}

/** `UNAUTHENTICATED` (401): the API key is missing, unknown or revoked. */
export class UnauthenticatedError extends RequestError {}

/** `FORBIDDEN` (403): the key is valid but its role may not do this. */
export class ForbiddenError extends RequestError {}

/** `RATE_LIMITED` (429): too many requests for the plan; retried automatically first. */
export class RateLimitedError extends RequestError {
  /** How long the server asked to wait, in milliseconds, when it said. */
  readonly retryAfterMs: number | null;

  constructor(init: TwhErrorInit & { errors?: GraphQLErrorEntry[]; retryAfterMs?: number | null }) {
    super(init);
    this.retryAfterMs = init.retryAfterMs ?? null;
  }
}

/** `UNAVAILABLE` (503): the server's database is out of reach for now; retried automatically first. */
export class UnavailableError extends RequestError {}

/**
 * The request itself is wrong: `BAD_REQUEST`, `GRAPHQL_PARSE_FAILED`,
 * `GRAPHQL_VALIDATION_FAILED`, `PAYLOAD_TOO_LARGE`, `UNSUPPORTED_MEDIA_TYPE`, or an
 * `INVALID_INPUT` reported for the whole request.
 */
export class ValidationError extends RequestError {}

/** `INTERNAL` (500): something failed inside the server; quote `requestId`. */
export class InternalServerError extends RequestError {}

/**
 * A mutation's business failure: the payload's `userErrors` were not empty, so nothing was
 * changed (every mutation is atomic). `code` and `field` are the first error's; `errors` holds
 * them all. The convenience methods throw this; the raw `graphql()` call returns the payload
 * as the server sent it.
 */
export class UserErrors extends TwhError {
  readonly errors: UserError[];

  constructor(errors: UserError[], requestId: string | null, status: number | null) {
    const first = errors[0];
    const message =
      errors.length === 1 && first
        ? `${first.code}: ${first.message}`
        : `${errors.length} user errors: ` + errors.map((e) => `${e.code}: ${e.message}`).join("; ");
    super({ code: first?.code ?? "INVALID_INPUT", message, field: first?.field ?? null, requestId, status });
    this.errors = errors;
  }

  /** Whether any of the errors has this code. */
  has(code: ErrorCode): boolean {
    return this.errors.some((e) => e.code === code);
  }
}

const VALIDATION_CODES = new Set<string>([
  "BAD_REQUEST",
  "GRAPHQL_PARSE_FAILED",
  "GRAPHQL_VALIDATION_FAILED",
  "PAYLOAD_TOO_LARGE",
  "UNSUPPORTED_MEDIA_TYPE",
  "INVALID_INPUT",
]);

/** Picks the class for a request-level failure from its code. */
export function requestErrorFor(init: TwhErrorInit & { errors?: GraphQLErrorEntry[]; retryAfterMs?: number | null }): RequestError {
  const code = init.code;
  if (code === "UNAUTHENTICATED") return new UnauthenticatedError(init);
  if (code === "FORBIDDEN") return new ForbiddenError(init);
  if (code === "RATE_LIMITED") return new RateLimitedError(init);
  if (code === "UNAVAILABLE") return new UnavailableError(init);
  if (VALIDATION_CODES.has(code)) return new ValidationError(init);
  if (code === "INTERNAL") return new InternalServerError(init);
  return new RequestError(init);
}
