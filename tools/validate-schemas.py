"""Validates JSON-RPC results against the Ethereum Execution APIs specification.

Usage: validate-schemas.py SPEC.json RESULTS.json
RESULTS is a list of {"method", "params", "result", "schema"?}; each result is checked against the
method's result schema in SPEC (JSON Schema draft 2019-09, `$ref`s into
`components`). Prints one line per failure and exits 1 if any; prints the methods of
the specification no result covered.
"""
import json
import sys

from jsonschema import Draft201909Validator

spec = json.load(open(sys.argv[1]))
results = json.load(open(sys.argv[2]))
methods = {m["name"]: m for m in spec["methods"]}
failures = 0
covered = set()
for r in results:
    m = methods.get(r["method"])
    if m is None:
        continue
    covered.add(r["method"])
    # A result may name the component schema it is checked against instead (a pending
    # transaction from eth_getTransactionByHash is a PendingTransactionInfo, as geth
    # answers; the method's own schema describes mined ones only).
    if "schema" in r:
        schema = {"$ref": "#/components/schemas/" + r["schema"]}
    else:
        schema = dict(m["result"]["schema"])
    schema["components"] = spec["components"]
    for err in Draft201909Validator(schema).iter_errors(r["result"]):
        failures += 1
        path = "/".join(str(p) for p in err.absolute_path)
        print(f"FAIL {r['method']} {json.dumps(r['params'])[:120]}: at /{path}: {err.message[:300]}")
        # For oneOf/anyOf failures, why each alternative failed.
        for sub in sorted(err.context, key=lambda e: len(list(e.absolute_schema_path)))[:6]:
            print(f"     because /{'/'.join(str(p) for p in sub.absolute_schema_path)}: {sub.message[:200]}")
print("UNCOVERED " + " ".join(sorted(set(methods) - covered)))
print(f"CHECKED {len(results)} results of {len(covered)} methods, {failures} failures")
sys.exit(1 if failures else 0)
