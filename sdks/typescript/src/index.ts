// @twh/sdk: the TypeScript client of The Warehouse Hub.

export {
  TwhClient,
  Items,
  Locations,
  StockLevels,
  Movements,
  type Item,
  type Location,
  type StockLevel,
  type Movement,
  type StockChange,
  type GraphQLCallOptions,
} from "./client.js";
export {
  type ClientOptions,
  type RequestOptions,
  type MutationOptions,
  parseRetryAfter,
} from "./transport.js";
export {
  TwhError,
  ConnectionError,
  TimeoutError,
  RequestError,
  UnauthenticatedError,
  ForbiddenError,
  RateLimitedError,
  UnavailableError,
  ValidationError,
  InternalServerError,
  UserErrors,
  type UserError,
  type GraphQLErrorEntry,
  type TwhErrorCode,
} from "./errors.js";
export { paginate, type Page, type ListArgs, type IterateArgs } from "./pagination.js";
export {
  verifyWebhook,
  signWebhook,
  WebhookVerificationError,
  type WebhookHeaders,
  type VerifyWebhookOptions,
} from "./webhooks.js";
export { VERSION } from "./version.js";
// The schema's input, enum and operation types, and the typed documents the client sends.
export * from "./generated/graphql.js";
