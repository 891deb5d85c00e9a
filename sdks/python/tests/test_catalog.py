"""Items and locations: create, read by id and by key, update with expected_version, list."""

from __future__ import annotations

import pytest

import twh


def test_item_crud(client: twh.Client, unique: str) -> None:
    sku = f"HAT-{unique}"
    item = client.items.create(
        sku=sku, name="Red hat", barcode="4006381333931", attributes={"colour": "red"}
    )
    assert (item.sku, item.name, item.unit, item.version) == (sku, "Red hat", "each", 1)
    assert item.status == twh.ItemStatus.ACTIVE
    assert item.attributes == {"colour": "red"}

    by_id = client.items.get(item.id)
    by_sku = client.items.get(sku=sku)
    assert by_id == by_sku == item
    assert client.items.get(sku=f"NOPE-{unique}") is None

    renamed = client.items.update(item.id, expected_version=1, name="Crimson hat")
    assert (renamed.name, renamed.version, renamed.barcode) == ("Crimson hat", 2, "4006381333931")
    cleared = client.items.update(item.id, expected_version=2, barcode=None)
    assert (cleared.barcode, cleared.name, cleared.version) == (None, "Crimson hat", 3)

    page = client.items.list(skus=[sku, "MUG-12OZ"])
    assert [i.sku for i in page] == ["MUG-12OZ", sku]
    assert not page.has_next_page


def test_stale_version_is_a_user_error(client: twh.Client, unique: str) -> None:
    item = client.items.create(sku=f"CUP-{unique}", name="Cup")
    client.items.update(item.id, expected_version=item.version, name="Cup 2")
    with pytest.raises(twh.UserErrors) as caught:
        client.items.update(item.id, expected_version=item.version, name="Cup 3")
    err = caught.value
    assert err.code == twh.ErrorCode.VERSION_CONFLICT == "VERSION_CONFLICT"
    assert err.field == ["expectedVersion"]
    assert err.request_id and err.status == 200
    assert err.errors[0].message


def test_duplicate_sku_names_the_field(client: twh.Client) -> None:
    with pytest.raises(twh.UserErrors) as caught:
        client.items.create(sku="MUG-12OZ", name="Another mug")
    assert caught.value.code == "ALREADY_EXISTS"
    assert caught.value.field == ["input", "sku"]
    assert caught.value.codes == ["ALREADY_EXISTS"]


def test_location_crud(client: twh.Client, unique: str) -> None:
    code = f"DOCK-{unique}"
    loc = client.locations.create(code=code, name="Dock", kind="STORE")
    assert (loc.code, loc.kind, loc.allow_negative, loc.version) == (
        code,
        twh.LocationKind.STORE,
        False,
        1,
    )
    assert client.locations.get(code=code) == client.locations.get(loc.id) == loc
    updated = client.locations.update(loc.id, expected_version=1, allow_negative=True)
    assert (updated.allow_negative, updated.name, updated.version) == (True, "Dock", 2)
    assert [l.code for l in client.locations.list(code=code)] == [code]
    codes = {l.code for l in client.locations.iterate(page_size=1)}
    assert {"WH-MAIN", "STORE-1", code} <= codes


async def test_async_item_crud(async_client: twh.AsyncClient, unique: str) -> None:
    item = await async_client.items.create(sku=f"ASYNC-{unique}", name="Async item")
    got = await async_client.items.get(sku=item.sku)
    assert got == item
    updated = await async_client.items.update(item.id, expected_version=1, status="ARCHIVED")
    assert updated.status == twh.ItemStatus.ARCHIVED
    loc = await async_client.locations.get(code="WH-MAIN")
    assert loc is not None and loc.code == "WH-MAIN"
