"""The scenario's calls through the Python SDK: one JSON request per line on stdin
(``{"call": name, "args": [...]}``), one JSON answer per line on stdout (``{"ok": value}``
or ``{"error": code}``). tests/surfaces/python.mjs drives it."""

import json
import sys

import twh
from twh.errors import TWHError


def dump(model):
    return model.model_dump(mode="json", by_alias=True)


def main(url: str, api_key: str) -> None:
    client = twh.Client(api_key, base_url=url, max_retries=0)

    def stock(method):
        def call(change, key):
            result = method(
                change["changes"],
                reason=change.get("reason"),
                idempotency_key=key,
            )
            return dump(result)

        return call

    def rename(sku, expected_version, name):
        item = client.items.get(sku=sku)
        return dump(client.items.update(item.id, expected_version=expected_version, name=name))

    calls = {
        "createItem": lambda i: dump(client.items.create(**{"sku": i["sku"], "name": i["name"], "unit": i.get("unit")})),
        "createLocation": lambda i: dump(client.locations.create(code=i["code"], name=i["name"])),
        "adjustStock": stock(client.adjust_stock),
        "moveStock": stock(client.move_stock),
        "setStock": stock(client.set_stock),
        "renameItem": rename,
        "stockLevel": lambda sku, code: dump(client.stock_level(sku, code)),
        "movements": lambda sku, size: [dump(m) for m in client.movements.iterate(sku=sku, page_size=size)],
    }
    for line in sys.stdin:
        request = json.loads(line)
        try:
            answer = {"ok": calls[request["call"]](*request["args"])}
        except TWHError as err:
            answer = {"error": err.code}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
