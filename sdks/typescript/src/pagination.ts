// Auto-pagination over Relay cursor connections (`first`/`after`, `pageInfo.hasNextPage` and
// `pageInfo.endCursor`).

/** One page of a connection. */
export interface Page<T> {
  nodes: T[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

/** Arguments of a list call: the connection's own filter plus `first` and `after`. */
export interface ListArgs<F> {
  filter?: F | null;
  /** Page size: 1 to 250 (the server refuses more with `INVALID_INPUT`). */
  first?: number | null;
  /** The `endCursor` of the previous page. */
  after?: string | null;
}

/** Arguments of an iteration: a filter, the page size, and where to start. */
export interface IterateArgs<F> {
  filter?: F | null;
  /** How many nodes to ask for per request: 1 to 250 (the server refuses more). Default 100. */
  pageSize?: number;
  /** Start after this cursor instead of at the beginning. */
  after?: string | null;
}

/**
 * Walks every page of a connection, yielding its nodes one by one; the next page is fetched
 * only when the previous one has been consumed.
 */
export async function* paginate<T>(
  fetchPage: (after: string | null) => Promise<Page<T>>,
  startAfter: string | null = null,
): AsyncGenerator<T, void, undefined> {
  let after = startAfter;
  for (;;) {
    const page = await fetchPage(after);
    yield* page.nodes;
    const next = page.pageInfo.endCursor;
    if (!page.pageInfo.hasNextPage || next === null || next === after) return;
    after = next;
  }
}
