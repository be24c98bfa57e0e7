#!/usr/bin/env bash
# Runs each cargo-fuzz target for a set time (default 600 s each), after seeding its
# corpus: transaction bytes from ethereum/tests TransactionTests and RLPTests
# (../shared/data), JSON-RPC requests for every method, and the preconfirmation
# fixtures. Not part of CI. Needs cargo-fuzz (`cargo install cargo-fuzz`); the stable
# toolchain builds it with RUSTC_BOOTSTRAP=1 (cargo-fuzz needs nightly flags).
#   scripts/fuzz.sh [seconds] [target ...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(tx_admission rpc_dispatch fragment_evidence)
export RUSTC_BOOTSTRAP=1
work=fuzz/corpus
mkdir -p "$work"/{tx_admission,rpc_dispatch,fragment_evidence} target/fuzz-seeds
python3 - "$work" <<'PY'
import hashlib, json, os, sys, tarfile
work = sys.argv[1]
def put(target, data):
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(work, target, name), "wb") as f:
        f.write(data)
def hexbytes(s):
    s = s[2:] if s.startswith("0x") else s
    try:
        return bytes.fromhex(s)
    except ValueError:
        return None
seeds = 0
for archive, key in [("TransactionTests.tar.gz", "txbytes"), ("RLPTests.tar.gz", "out")]:
    path = os.path.join("..", "shared", "data", "ethereum-tests", archive)
    with tarfile.open(path) as t:
        for m in t.getmembers():
            if not m.name.endswith(".json"):
                continue
            doc = json.load(t.extractfile(m))
            for case in doc.values():
                raw = case.get(key) if isinstance(case, dict) else None
                if isinstance(raw, str):
                    b = hexbytes(raw)
                    if b:
                        put("tx_admission", b)
                        seeds += 1
methods = ["eth_getBalance", "eth_call", "eth_getLogs", "eth_getProof", "eth_feeHistory", "debug_traceCall",
           "eth_newFilter", "eth_getBlockByNumber", "eth_sendRawTransaction", "trace_filter", "eth_estimateGas",
           "txpool_content", "eth_signTypedData_v4", "eth_createAccessList", "eth_subscribe", "evm_increaseTime"]
params = ['[]', '["0x0000000000000000000000000000000000000000","latest"]', '[{"to":"0x0000000000000000000000000000000000000001","data":"0x"},"latest",{"0x0000000000000000000000000000000000000001":{"code":"0x6000"}}]',
          '[{"fromBlock":"0x0","toBlock":"latest"}]', '["0x0000000000000000000000000000000000000000",["0x0"],"latest"]', '["0x5","latest",[10,90]]']
for m in methods:
    for p in params:
        put("rpc_dispatch", json.dumps({"jsonrpc": "2.0", "id": 1, "method": m, "params": json.loads(p)}).encode())
put("rpc_dispatch", b'[{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]},{"jsonrpc":"2.0","id":2,"method":"eth_blockNumber"}]')
fixtures = os.path.join("crates", "node", "tests", "fixtures", "preconf")
for name in os.listdir(fixtures):
    put("fragment_evidence", open(os.path.join(fixtures, name), "rb").read())
print(f"seeded {seeds} transaction byte strings, {len(methods) * len(params) + 1} requests, {len(os.listdir(fixtures))} fragment documents")
PY
for t in "${targets[@]}"; do
  echo "== $t for ${secs}s"
  cargo fuzz run "$t" "$work/$t" -- -max_total_time="$secs" -rss_limit_mb=4096 -timeout=30 -print_final_stats=1 2>&1 | tee "target/fuzz-$t.log" | grep -E "^(#[0-9]+.*(DONE|pulse)|stat::|==[0-9]+==|SUMMARY|Done)" || true
done
