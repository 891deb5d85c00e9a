// The scenario's calls through the Python SDK, by way of python_driver.py (one JSON line per
// call). The interpreter is TWH_PYTHON (a venv with sdks/python installed), else python3.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { level, movement, stockChange } from "./scenario.mjs";

const driver = fileURLToPath(new URL("./python_driver.py", import.meta.url));

export function pythonSurface({ url, apiKey }) {
  const child = spawn(process.env.TWH_PYTHON || "python3", [driver, url, apiKey], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const call = async (name, args, shape) => {
    child.stdin.write(`${JSON.stringify({ call: name, args })}\n`);
    const { value, done } = await lines.next();
    if (done) throw new Error("the Python driver exited");
    const answer = JSON.parse(value);
    return answer.error ? { error: answer.error } : { ok: shape(answer.ok) };
  };
  return {
    name: "Python SDK",
    createItem: (input) => call("createItem", [input], (i) => ({ sku: i.sku, name: i.name, version: i.version })),
    createLocation: (input) => call("createLocation", [input], (l) => ({ code: l.code, name: l.name })),
    adjustStock: (input, key) => call("adjustStock", [input, key], stockChange),
    moveStock: (input, key) => call("moveStock", [input, key], stockChange),
    setStock: (input, key) => call("setStock", [input, key], stockChange),
    renameItem: (sku, version, name) => call("renameItem", [sku, version, name], (i) => ({ name: i.name, version: i.version })),
    stockLevel: (sku, code) => call("stockLevel", [sku, code], level),
    movements: (sku, size) => call("movements", [sku, size], (all) => all.map(movement)),
    close: async () => {
      child.stdin.end();
      await new Promise((resolve) => child.on("exit", resolve));
    },
  };
}
