"""Stock changes through the ledger: adjust, move, set, and reading levels and movements."""

from __future__ import annotations

import pytest

import twh


@pytest.fixture
def sku(client: twh.Client, unique: str) -> str:
    return client.items.create(sku=f"BOX-{unique}", name="Box").sku


def test_adjust_move_set_and_read(client: twh.Client, sku: str) -> None:
    received = client.adjust_stock(
        [twh.AdjustChange(sku=sku, location_code="WH-MAIN", delta=10)],
        reason=twh.MovementReason.RECEIVED,
        reference_document_uri="gid://test/Receipt/1",
    )
    assert received.group_id
    [movement] = received.movements
    assert (movement.delta, movement.quantity_after_change, movement.state) == (
        10,
        10,
        twh.QuantityState.AVAILABLE,
    )
    assert movement.reference_document_uri == "gid://test/Receipt/1"
    assert received.levels[0].available == 10

    moved = client.move_stock(
        [
            {
                "sku": sku,
                "quantity": 3,
                "from": {"location_code": "WH-MAIN"},
                "to": {"location_code": "STORE-1"},
            }
        ]
    )
    assert sorted((m.location_code, m.delta) for m in moved.movements) == [
        ("STORE-1", 3),
        ("WH-MAIN", -3),
    ]

    committed = client.move_stock(
        [
            twh.MoveChange(
                sku=sku,
                quantity=2,
                from_=twh.MoveEndpoint(location_code="STORE-1"),
                to=twh.MoveEndpoint(location_code="STORE-1", state="COMMITTED"),
            )
        ],
        reason="RESERVATION",
    )
    assert {m.state for m in committed.movements} == {
        twh.QuantityState.AVAILABLE,
        twh.QuantityState.COMMITTED,
    }

    counted = client.set_stock(
        [{"sku": sku, "location_code": "WH-MAIN", "quantity": 4, "change_from_quantity": 7}]
    )
    assert [(m.delta, m.reason) for m in counted.movements] == [
        (-3, twh.MovementReason.CYCLE_COUNT)
    ]

    main = client.stock_level(sku, "WH-MAIN")
    store = client.stock_level(sku, "STORE-1")
    assert main is not None and store is not None
    assert (main.available, main.on_hand) == (4, 4)
    assert (store.available, store.committed, store.on_hand) == (1, 2, 3)
    assert client.stock_level(sku, "NOWHERE") is None

    levels = client.stock_levels.list(sku=sku)
    assert {(l.location_code, l.on_hand) for l in levels} == {("WH-MAIN", 4), ("STORE-1", 3)}

    history = list(client.movements.iterate(sku=sku, page_size=2))
    assert [m.delta for m in history] == [10, -3, 3, -2, 2, -3]
    assert [m.delta for m in client.movements.list(sku=sku, location_code="STORE-1")] == [3, -2, 2]
    group = client.movements.list(group_id=received.group_id)
    assert [m.id for m in group] == [movement.id]


def test_insufficient_stock_is_a_user_error(client: twh.Client, sku: str) -> None:
    client.adjust_stock(
        [{"sku": sku, "location_code": "WH-MAIN", "delta": 2}], reason="RECEIVED"
    )
    with pytest.raises(twh.UserErrors) as caught:
        client.adjust_stock(
            [
                {"sku": sku, "location_code": "WH-MAIN", "delta": 1},
                {"sku": sku, "location_code": "WH-MAIN", "delta": -5},
            ],
            reason="SHRINKAGE",
        )
    err = caught.value
    assert err.code == "INSUFFICIENT_STOCK"
    assert err.field == ["input", "changes", "1", "delta"]
    assert err.request_id
    level = client.stock_level(sku, "WH-MAIN")
    assert level is not None and level.available == 2  # atomic: nothing applied


def test_stale_change_from_quantity(client: twh.Client, sku: str) -> None:
    with pytest.raises(twh.UserErrors) as caught:
        client.set_stock(
            [{"sku": sku, "location_code": "WH-MAIN", "quantity": 9, "changeFromQuantity": 1}]
        )
    assert caught.value.code == "CHANGE_FROM_QUANTITY_STALE"
    assert caught.value.field is not None and caught.value.field[:2] == ["input", "changes"]


def test_caller_idempotency_key_replays(client: twh.Client, sku: str, unique: str) -> None:
    change = [{"sku": sku, "location_code": "WH-MAIN", "delta": 4}]
    first = client.adjust_stock(change, reason="RECEIVED", idempotency_key=f"k-{unique}")
    again = client.adjust_stock(change, reason="RECEIVED", idempotency_key=f"k-{unique}")
    assert again == first
    level = client.stock_level(sku, "WH-MAIN")
    assert level is not None and level.available == 4
    with pytest.raises(twh.UserErrors) as caught:
        client.adjust_stock(
            [{"sku": sku, "location_code": "WH-MAIN", "delta": 5}],
            reason="RECEIVED",
            idempotency_key=f"k-{unique}",
        )
    assert caught.value.code == "IDEMPOTENCY_KEY_PARAMETER_MISMATCH"


def test_no_key_given_means_a_fresh_key_per_call(client: twh.Client, sku: str) -> None:
    change = [{"sku": sku, "location_code": "WH-MAIN", "delta": 1}]
    client.adjust_stock(change, reason="RECEIVED")
    client.adjust_stock(change, reason="RECEIVED")
    level = client.stock_level(sku, "WH-MAIN")
    assert level is not None and level.available == 2


async def test_async_stock(async_client: twh.AsyncClient, unique: str) -> None:
    item = await async_client.items.create(sku=f"ABOX-{unique}", name="Async box")
    change = await async_client.adjust_stock(
        [{"sku": item.sku, "location_code": "STORE-1", "delta": 6}], reason="RECEIVED"
    )
    assert change.levels[0].available == 6
    await async_client.set_stock([{"sku": item.sku, "location_code": "STORE-1", "quantity": 1}])
    await async_client.move_stock(
        [
            {
                "sku": item.sku,
                "quantity": 1,
                "from": {"location_code": "STORE-1"},
                "to": {"location_code": "WH-MAIN"},
            }
        ]
    )
    level = await async_client.stock_level(item.sku, "WH-MAIN")
    assert level is not None and level.available == 1
    page = await async_client.movements.list(sku=item.sku)
    assert [m.delta for m in page] == [6, -5, -1, 1]
