import { randomUUID } from "node:crypto";

import { UserErrors, type UserError } from "./errors.js";
import {
  AdjustStockDocument,
  CreateItemDocument,
  CreateLocationDocument,
  ItemDocument,
  ItemsDocument,
  LocationDocument,
  LocationsDocument,
  MoveStockDocument,
  MovementsDocument,
  SetStockDocument,
  StockLevelDocument,
  StockLevelsDocument,
  UpdateItemDocument,
  UpdateLocationDocument,
  type AdjustStockInput,
  type CreateItemInput,
  type CreateLocationInput,
  type ItemFieldsFragment,
  type ItemFilter,
  type LocationFieldsFragment,
  type LocationFilter,
  type MoveStockInput,
  type MovementFieldsFragment,
  type MovementFilter,
  type SetStockInput,
  type StockLevelFieldsFragment,
  type StockLevelFilter,
  type TypedDocumentString,
  type UpdateItemInput,
  type UpdateLocationInput,
} from "./generated/graphql.js";
import { paginate, type IterateArgs, type ListArgs, type Page } from "./pagination.js";
import { Transport, type ClientOptions, type MutationOptions, type RequestOptions } from "./transport.js";

export type Item = ItemFieldsFragment;
export type Location = LocationFieldsFragment;
export type StockLevel = StockLevelFieldsFragment;
export type Movement = MovementFieldsFragment;

/** What `adjustStock`, `moveStock` and `setStock` return when they succeed. */
export interface StockChange {
  /** Shared by every movement of the call; they were applied atomically. */
  groupId: string;
  /** The ledger entries written, with `quantityAfterChange`. */
  movements: Movement[];
  /** The resulting level of every (item, location) touched. */
  levels: StockLevel[];
}

/** Options of the raw `graphql()` call. */
export interface GraphQLCallOptions extends RequestOptions {
  /**
   * Whether a failure whose outcome is unknown (network error, timeout, 429, 503) may be sent
   * again. Default: true for a document without a mutation, false otherwise. Set it to true for
   * a mutation only when its variables carry an `idempotencyKey`.
   */
  retry?: boolean;
}

type Variables = Record<string, unknown>;
type Document<R, V> = TypedDocumentString<R, V>;

interface Payload {
  userErrors: UserError[];
}

function onlyConcurrentRequest(payload: Payload | null | undefined): boolean {
  const errors = payload?.userErrors ?? [];
  return errors.length > 0 && errors.every((e) => e.code === "IDEMPOTENCY_CONCURRENT_REQUEST");
}

/** Whether a GraphQL document contains a mutation (comments and strings ignored). */
function hasMutation(query: string): boolean {
  const code = query
    .replace(/"""[\s\S]*?"""/g, "")
    .replace(/"(?:[^"\\\n]|\\.)*"/g, "")
    .replace(/#[^\n\r]*/g, "");
  return /(^|[\s}])mutation(?=[\s({@]|$)/.test(code);
}

/** The API client. One instance can serve many concurrent calls. */
export class TwhClient {
  /** Catalog items: create, update, get (by id or SKU), list and iterate. */
  readonly items: Items;
  /** Locations: create, update, get (by id or code), list and iterate. */
  readonly locations: Locations;
  /** Stock levels of every (item, location): list and iterate. */
  readonly stockLevels: StockLevels;
  /** Ledger entries in recording order: list and iterate. */
  readonly movements: Movements;

  private readonly transport: Transport;

  constructor(options: ClientOptions = {}) {
    this.transport = new Transport(options);
    this.items = new Items(this);
    this.locations = new Locations(this);
    this.stockLevels = new StockLevels(this);
    this.movements = new Movements(this);
  }

  /** The GraphQL endpoint this client posts to. */
  get url(): string {
    return this.transport.url;
  }

  /**
   * Sends any GraphQL document and returns its `data`. Request-level failures throw a
   * `RequestError` subclass; mutation `userErrors` are returned as the server sent them.
   */
  async graphql<TData = Record<string, unknown>, TVariables extends Variables = Variables>(
    query: string | Document<TData, TVariables>,
    variables?: TVariables,
    options: GraphQLCallOptions = {},
  ): Promise<TData> {
    const text = query.toString();
    const retryable = options.retry ?? !hasMutation(text);
    const result = await this.transport.execute<TData>(text, variables, { ...options, retryable });
    return result.data;
  }

  /** Adds or removes quantities (up to 250 changes, all or nothing). */
  adjustStock(input: AdjustStockInput, options?: MutationOptions): Promise<StockChange> {
    return this.stockChange(AdjustStockDocument, "adjustStock", input, options);
  }

  /** Moves quantities between states and/or locations. */
  moveStock(input: MoveStockInput, options?: MutationOptions): Promise<StockChange> {
    return this.stockChange(MoveStockDocument, "moveStock", input, options);
  }

  /** Sets absolute quantities (cycle counts); the ledger records the difference. */
  setStock(input: SetStockInput, options?: MutationOptions): Promise<StockChange> {
    return this.stockChange(SetStockDocument, "setStock", input, options);
  }

  /**
   * The level of one SKU at one location: all zeros if it never moved, `null` if the SKU or the
   * location is unknown.
   */
  async stockLevel(args: { sku: string; locationCode: string }, options?: RequestOptions): Promise<StockLevel | null> {
    const data = await this.query(StockLevelDocument, args, options);
    return data.stockLevel;
  }

  /** @internal Runs a typed query (retried on transient failures). */
  async query<R, V extends Variables>(doc: Document<R, V>, variables: V, options: RequestOptions = {}): Promise<R> {
    const result = await this.transport.execute<R>(doc.toString(), variables, { ...options, retryable: true });
    return result.data;
  }

  /**
   * @internal Runs a typed mutation with an idempotency key (the caller's, or a new UUID kept
   * for every retry) and throws `UserErrors` when its payload has any.
   */
  async mutate<R, V extends Variables, K extends keyof R>(
    doc: Document<R, V>,
    field: K,
    variables: Omit<V, "idempotencyKey">,
    options: MutationOptions = {},
  ): Promise<Omit<R[K], "userErrors">> {
    const idempotencyKey = options.idempotencyKey ?? randomUUID();
    const payloadOf = (data: unknown) => (data as Record<K, Payload | null> | null)?.[field] ?? null;
    const result = await this.transport.execute<R>(
      doc.toString(),
      { ...variables, idempotencyKey },
      { ...options, idempotencyKey, retryable: true, retryOnData: (data) => onlyConcurrentRequest(payloadOf(data)) },
    );
    const payload = payloadOf(result.data);
    if (payload && payload.userErrors.length > 0) {
      throw new UserErrors(payload.userErrors, result.requestId, result.status);
    }
    const { userErrors: _ignored, ...rest } = (payload ?? {}) as Payload & Record<string, unknown>;
    return rest as Omit<R[K], "userErrors">;
  }

  private async stockChange<R, V extends Variables, K extends keyof R>(
    doc: Document<R, V>,
    field: K,
    input: V["input"],
    options?: MutationOptions,
  ): Promise<StockChange> {
    const payload = (await this.mutate(doc, field, { input } as unknown as Omit<V, "idempotencyKey">, options)) as unknown as {
      groupId: string | null;
      movements: Movement[];
      levels: StockLevel[];
    };
    return { groupId: payload.groupId ?? "", movements: payload.movements, levels: payload.levels };
  }
}

function required<T>(value: T | null | undefined, what: string): T {
  if (value == null) throw new Error(`the server returned no ${what} and no userErrors`);
  return value;
}

/** Catalog items. */
export class Items {
  constructor(private readonly client: TwhClient) {}

  /** Creates an item; the SKU must be unused (`ALREADY_EXISTS` otherwise). */
  async create(input: CreateItemInput, options?: MutationOptions): Promise<Item> {
    const payload = await this.client.mutate(CreateItemDocument, "createItem", { input }, options);
    return required(payload.item, "item");
  }

  /** Updates an item if its version is still `expectedVersion` (`VERSION_CONFLICT` otherwise). */
  async update(
    args: { id: string; expectedVersion: number; input: UpdateItemInput },
    options?: MutationOptions,
  ): Promise<Item> {
    const payload = await this.client.mutate(UpdateItemDocument, "updateItem", args, options);
    return required(payload.item, "item");
  }

  /** One item by id or by SKU; `null` when there is none. */
  async get(ref: { id: string } | { sku: string }, options?: RequestOptions): Promise<Item | null> {
    const data = await this.client.query(ItemDocument, ref, options);
    return data.item;
  }

  /** One page of items in creation order. */
  async list(args: ListArgs<ItemFilter> = {}, options?: RequestOptions): Promise<Page<Item>> {
    const data = await this.client.query(ItemsDocument, args, options);
    return data.items;
  }

  /** Every item matching the filter, fetched page by page as you iterate. */
  iterate(args: IterateArgs<ItemFilter> = {}, options?: RequestOptions): AsyncGenerator<Item, void, undefined> {
    return paginate((after) => this.list({ filter: args.filter, first: args.pageSize ?? 100, after }, options), args.after);
  }
}

/** Locations (warehouses, stores, virtual places). */
export class Locations {
  constructor(private readonly client: TwhClient) {}

  /** Creates a location; the code must be unused (`ALREADY_EXISTS` otherwise). */
  async create(input: CreateLocationInput, options?: MutationOptions): Promise<Location> {
    const payload = await this.client.mutate(CreateLocationDocument, "createLocation", { input }, options);
    return required(payload.location, "location");
  }

  /** Updates a location if its version is still `expectedVersion` (`VERSION_CONFLICT` otherwise). */
  async update(
    args: { id: string; expectedVersion: number; input: UpdateLocationInput },
    options?: MutationOptions,
  ): Promise<Location> {
    const payload = await this.client.mutate(UpdateLocationDocument, "updateLocation", args, options);
    return required(payload.location, "location");
  }

  /** One location by id or by code; `null` when there is none. */
  async get(ref: { id: string } | { code: string }, options?: RequestOptions): Promise<Location | null> {
    const data = await this.client.query(LocationDocument, ref, options);
    return data.location;
  }

  /** One page of locations in creation order. */
  async list(args: ListArgs<LocationFilter> = {}, options?: RequestOptions): Promise<Page<Location>> {
    const data = await this.client.query(LocationsDocument, args, options);
    return data.locations;
  }

  /** Every location matching the filter, fetched page by page as you iterate. */
  iterate(args: IterateArgs<LocationFilter> = {}, options?: RequestOptions): AsyncGenerator<Location, void, undefined> {
    return paginate((after) => this.list({ filter: args.filter, first: args.pageSize ?? 100, after }, options), args.after);
  }
}

/** Stock levels. */
export class StockLevels {
  constructor(private readonly client: TwhClient) {}

  /** One page of stock levels. */
  async list(args: ListArgs<StockLevelFilter> = {}, options?: RequestOptions): Promise<Page<StockLevel>> {
    const data = await this.client.query(StockLevelsDocument, args, options);
    return data.stockLevels;
  }

  /** Every stock level matching the filter, fetched page by page as you iterate. */
  iterate(args: IterateArgs<StockLevelFilter> = {}, options?: RequestOptions): AsyncGenerator<StockLevel, void, undefined> {
    return paginate((after) => this.list({ filter: args.filter, first: args.pageSize ?? 100, after }, options), args.after);
  }
}

/** Ledger movements. */
export class Movements {
  constructor(private readonly client: TwhClient) {}

  /** One page of movements in recording order. */
  async list(args: ListArgs<MovementFilter> = {}, options?: RequestOptions): Promise<Page<Movement>> {
    const data = await this.client.query(MovementsDocument, args, options);
    return data.movements;
  }

  /** Every movement matching the filter, fetched page by page as you iterate. */
  iterate(args: IterateArgs<MovementFilter> = {}, options?: RequestOptions): AsyncGenerator<Movement, void, undefined> {
    return paginate((after) => this.list({ filter: args.filter, first: args.pageSize ?? 100, after }, options), args.after);
  }
}
