"""Retries through a scripted proxy in front of the real server.

The key scenario: the server applies an adjustStock but its answer never reaches the client. The
SDK sends the same request again with the same idempotency key, the server replays its stored
answer, and the stock moves exactly once.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Iterator

import pytest

import twh

from .conftest import Server
from .proxy import Drop, Proxy, Reply

FAST = twh.RetryPolicy(max_retries=3, initial_delay=0.05, max_delay=0.2)


@pytest.fixture
def proxy(server: Server) -> Iterator[Proxy]:
    with Proxy(server.url) as p:
        yield p


@pytest.fixture
def via_proxy(server: Server, proxy: Proxy) -> Iterator[twh.Client]:
    with twh.Client(server.api_key, base_url=proxy.url, retry=FAST) as c:
        yield c


def unavailable(retry_after: str) -> Reply:
    body = {"errors": [{"message": "try later", "extensions": {"code": "UNAVAILABLE"}}]}
    return Reply(
        503,
        {
            "Content-Type": "application/graphql-response+json",
            "Retry-After": retry_after,
            "x-request-id": "proxy-503",
        },
        json.dumps(body).encode(),
    )


def on_hand(client: twh.Client, sku: str, location: str = "WH-MAIN") -> int:
    level = client.stock_level(sku, location)
    assert level is not None
    return level.on_hand


def test_dropped_response_is_retried_with_the_same_key(
    client: twh.Client, via_proxy: twh.Client, proxy: Proxy, unique: str
) -> None:
    sku = client.items.create(sku=f"DROP-{unique}", name="Dropped").sku
    before = on_hand(client, sku)
    proxy.script("AdjustStock", Drop())

    change = via_proxy.adjust_stock(
        [{"sku": sku, "location_code": "WH-MAIN", "delta": 7}], reason="RECEIVED"
    )

    sent = proxy.requests("AdjustStock")
    assert [type(s.action).__name__ for s in sent] == ["Drop", "Forward"]
    assert sent[0].idempotency_key and sent[0].idempotency_key == sent[1].idempotency_key
    assert sent[0].body == sent[1].body
    assert on_hand(client, sku) == before + 7  # applied exactly once
    assert change.movements[0].quantity_after_change == before + 7
    assert len(client.movements.list(sku=sku, reason="RECEIVED")) == 1


async def test_async_dropped_response_is_retried_with_the_same_key(
    server: Server, client: twh.Client, proxy: Proxy, unique: str
) -> None:
    sku = client.items.create(sku=f"ADROP-{unique}", name="Dropped async").sku
    proxy.script("AdjustStock", Drop(), Drop())
    async with twh.AsyncClient(server.api_key, base_url=proxy.url, retry=FAST) as c:
        change = await c.adjust_stock(
            [{"sku": sku, "location_code": "STORE-1", "delta": 3}],
            reason="RECEIVED",
            idempotency_key=f"mine-{unique}",
        )
    keys = [s.idempotency_key for s in proxy.requests("AdjustStock")]
    assert keys == [f"mine-{unique}"] * 3
    assert change.levels[0].available == 3
    assert on_hand(client, sku, "STORE-1") == 3


def test_503_with_retry_after_is_retried(
    client: twh.Client, via_proxy: twh.Client, proxy: Proxy, unique: str
) -> None:
    sku = client.items.create(sku=f"BUSY-{unique}", name="Busy").sku
    proxy.script("SetStock", unavailable("1"))
    started = time.monotonic()
    via_proxy.set_stock([{"sku": sku, "location_code": "WH-MAIN", "quantity": 5}])
    elapsed = time.monotonic() - started
    sent = proxy.requests("SetStock")
    assert len(sent) == 2 and sent[0].idempotency_key == sent[1].idempotency_key
    assert elapsed >= 0.95  # waited for Retry-After, not the 0.05 s backoff
    assert on_hand(client, sku) == 5


def test_429_with_an_http_date_is_retried(via_proxy: twh.Client, proxy: Proxy) -> None:
    when = email.utils.formatdate(time.time() + 1, usegmt=True)
    body = json.dumps({"errors": [{"message": "slow down", "extensions": {"code": "RATE_LIMITED"}}]})
    proxy.script("GetStockLevel", Reply(429, {"Retry-After": when}, body.encode()))
    level = via_proxy.stock_level("MUG-12OZ", "WH-MAIN")
    assert level is not None
    assert len(proxy.requests("GetStockLevel")) == 2


def test_gives_up_after_max_retries(server: Server, proxy: Proxy) -> None:
    proxy.script("GetStockLevel", *[unavailable("0")] * 5)
    policy = twh.RetryPolicy(max_retries=2, initial_delay=0.01)
    with twh.Client(server.api_key, base_url=proxy.url, retry=policy) as c:
        with pytest.raises(twh.Unavailable) as caught:
            c.stock_level("MUG-12OZ", "WH-MAIN")
    assert len(proxy.requests("GetStockLevel")) == 3
    err = caught.value
    assert (err.code, err.status, err.request_id, err.retry_after) == (
        "UNAVAILABLE",
        503,
        "proxy-503",
        0.0,
    )


def test_raw_mutation_without_a_key_is_not_resent(
    via_proxy: twh.Client, client: twh.Client, proxy: Proxy, unique: str
) -> None:
    sku = f"RAW-{unique}"
    proxy.script("Raw", Drop())
    with pytest.raises(twh.APIConnectionError):
        via_proxy.graphql(
            "mutation Raw($sku: String!) { createItem(input: {sku: $sku, name: \"r\"}) "
            "{ item { id } } }",
            {"sku": sku},
            operation_name="Raw",
        )
    assert len(proxy.requests("Raw")) == 1
    assert client.items.get(sku=sku) is not None  # the server did apply it, once


def test_no_retries_when_turned_off(server: Server, proxy: Proxy) -> None:
    proxy.script("GetStockLevel", unavailable("0"))
    with twh.Client(server.api_key, base_url=proxy.url, max_retries=0) as c:
        with pytest.raises(twh.Unavailable):
            c.stock_level("MUG-12OZ", "WH-MAIN")
    assert len(proxy.requests("GetStockLevel")) == 1


def test_key_still_in_flight_is_waited_out(
    client: twh.Client, via_proxy: twh.Client, proxy: Proxy, unique: str
) -> None:
    sku = client.items.create(sku=f"FLIGHT-{unique}", name="In flight").sku
    busy = {
        "data": {
            "adjustStock": {
                "groupId": None,
                "movements": [],
                "levels": [],
                "userErrors": [
                    {
                        "code": "IDEMPOTENCY_CONCURRENT_REQUEST",
                        "field": ["idempotencyKey"],
                        "message": "still in progress",
                    }
                ],
            }
        }
    }
    proxy.script("AdjustStock", Reply(200, {"Content-Type": "application/json"},
                                      json.dumps(busy).encode()))
    change = via_proxy.adjust_stock(
        [{"sku": sku, "location_code": "WH-MAIN", "delta": 2}], reason="RECEIVED"
    )
    assert change.levels[0].available == 2
    keys = {s.idempotency_key for s in proxy.requests("AdjustStock")}
    assert len(proxy.requests("AdjustStock")) == 2 and len(keys) == 1
