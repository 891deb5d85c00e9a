"""Iterating over Relay connections, more than one page at a time, sync and async."""

from __future__ import annotations

import twh

CONNECTION_QUERY = """
query Levels($first: Int, $after: String, $location: String) {
  stockLevels(first: $first, after: $after, filter: {locationCode: $location}) {
    edges { node { sku locationCode available } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


def make_items(client: twh.Client, prefix: str, n: int) -> list[str]:
    return [client.items.create(sku=f"{prefix}-{i}", name=f"Page item {i}").sku for i in range(n)]


def test_items_iterate_over_pages(client: twh.Client, unique: str) -> None:
    prefix = f"PG{unique}"
    skus = make_items(client, prefix, 7)
    first = client.items.list(first=3, search=prefix)
    assert len(first) == 3 and first.has_next_page and first.end_cursor
    second = client.items.list(first=3, search=prefix, after=first.end_cursor)
    assert [i.sku for i in second] == skus[3:6]
    assert [i.sku for i in client.items.iterate(page_size=3, search=prefix)] == skus


def test_stock_levels_iterate(client: twh.Client) -> None:
    everything = client.stock_levels.list(first=250)
    assert not everything.has_next_page
    pairs = [(l.sku, l.location_code) for l in client.stock_levels.iterate(page_size=2)]
    assert len(pairs) >= 8 and len(set(pairs)) == len(pairs)
    assert pairs == [(l.sku, l.location_code) for l in everything]


def test_paginate_any_connection(client: twh.Client) -> None:
    nodes = list(
        client.paginate(CONNECTION_QUERY, {"location": "STORE-1"}, connection="stockLevels",
                        page_size=1)
    )
    assert len(nodes) >= 4
    assert all(n["locationCode"] == "STORE-1" for n in nodes)
    assert len({n["sku"] for n in nodes}) == len(nodes)


async def test_async_iterate(async_client: twh.AsyncClient, client: twh.Client, unique: str) -> None:
    prefix = f"APG{unique}"
    skus = make_items(client, prefix, 5)
    got = [i.sku async for i in async_client.items.iterate(page_size=2, search=prefix)]
    assert got == skus
    levels = [l async for l in async_client.stock_levels.iterate(page_size=3)]
    assert len(levels) >= 8
    nodes = [
        n
        async for n in async_client.paginate(
            CONNECTION_QUERY, {"location": "WH-MAIN"}, connection="stockLevels", page_size=2
        )
    ]
    assert len(nodes) >= 4
    moves = [m async for m in async_client.movements.iterate(page_size=2, location_code="WH-MAIN")]
    assert len(moves) >= 4
