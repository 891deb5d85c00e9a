"""Request-level failures become typed exceptions with code, field, request_id and status."""

from __future__ import annotations

import httpx
import pytest

import twh

from .conftest import Server


def test_unauthenticated_has_its_request_id(server: Server) -> None:
    seen: list[httpx.Response] = []
    http = httpx.Client(event_hooks={"response": [seen.append]})
    with twh.Client("twh_test_not_a_real_key", base_url=server.url, http_client=http) as c:
        with pytest.raises(twh.Unauthenticated) as caught:
            c.items.list()
    http.close()
    err = caught.value
    assert isinstance(err, twh.RequestError) and isinstance(err, twh.TWHError)
    assert err.code == "UNAUTHENTICATED"
    assert err.status == 401
    assert err.request_id and err.request_id == seen[-1].headers["x-request-id"]
    assert err.request_id in str(err)
    assert len(seen) == 1  # a 401 is not retried


async def test_async_unauthenticated(server: Server) -> None:
    async with twh.AsyncClient("twh_test_wrong", base_url=server.url) as c:
        with pytest.raises(twh.Unauthenticated) as caught:
            await c.stock_level("MUG-12OZ", "WH-MAIN")
    assert caught.value.status == 401 and caught.value.request_id


def test_invalid_document(client: twh.Client) -> None:
    with pytest.raises(twh.InvalidRequest) as caught:
        client.graphql("{ itemz { nodes { sku } } }")
    assert caught.value.code == "GRAPHQL_VALIDATION_FAILED"
    assert caught.value.status == 400
    assert caught.value.request_id


def test_invalid_argument_has_a_path(client: twh.Client) -> None:
    with pytest.raises(twh.InvalidInput) as caught:
        client.graphql("{ item { sku } }")
    assert caught.value.code == "INVALID_INPUT"
    assert caught.value.field == ["item"]


def test_sdk_checks_what_it_can_before_sending(client: twh.Client) -> None:
    with pytest.raises(ValueError):
        client.items.get()
    with pytest.raises(ValueError):
        client.stock_levels.list(first=500)
    with pytest.raises(ValueError):
        client.adjust_stock([], reason="RECEIVED")


def test_connection_refused_is_a_connection_error() -> None:
    with twh.Client("k", base_url="http://127.0.0.1:9", max_retries=1,
                    retry=twh.RetryPolicy(initial_delay=0.01)) as c:
        with pytest.raises(twh.APIConnectionError) as caught:
            c.stock_level("MUG-12OZ", "WH-MAIN")
    assert caught.value.status is None and caught.value.request_id is None


def test_raw_graphql_returns_data_and_user_errors(client: twh.Client) -> None:
    data = client.graphql(
        "query($sku: String!) { item(sku: $sku) { sku name } }", {"sku": "MUG-12OZ"}
    )
    assert data["item"]["sku"] == "MUG-12OZ"
    data = client.graphql(
        'mutation { createItem(input: {sku: "MUG-12OZ", name: "x"}) { userErrors { code } } }'
    )
    assert data["createItem"]["userErrors"] == [{"code": "ALREADY_EXISTS"}]
