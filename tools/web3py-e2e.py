"""End to end with web3.py (PyPI, pinned in tools/requirements.txt) against a fresh
`cairn dev`: block, pending and contract-event filters (eth_newFilter and friends),
transactions from the unlocked accounts, and a contract deployed and called.
Run by crates/node/tests/e2e_web3py.rs; prints one JSON line."""
import json
import sys

from web3 import Web3

url, artifacts = sys.argv[1], sys.argv[2]
w3 = Web3(Web3.HTTPProvider(url))
art = json.load(open(artifacts))["contracts"]["Token"]
out = {"connected": w3.is_connected(), "chainId": w3.eth.chain_id}
me, other = w3.eth.accounts[0], w3.eth.accounts[1]

blocks = w3.eth.filter("latest")
pending = w3.eth.filter("pending")
tx = w3.eth.send_transaction({"from": me, "to": other, "value": w3.to_wei(1, "ether")})
receipt = w3.eth.wait_for_transaction_receipt(tx, timeout=30, poll_latency=0.05)
out["sendStatus"] = receipt.status
out["blockFilterSawBlock"] = receipt.blockHash in blocks.get_new_entries()
out["pendingFilterSawTx"] = tx in pending.get_new_entries()
out["blockFilterEmptyAfter"] = blocks.get_new_entries() == []

Token = w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
deploy = Token.constructor("Py", "PY").transact({"from": me})
address = w3.eth.wait_for_transaction_receipt(deploy, timeout=30, poll_latency=0.05).contractAddress
token = w3.eth.contract(address=address, abi=art["abi"])
events = token.events.Transfer.create_filter(from_block="latest")
mint = token.functions.mint(other, 77).transact({"from": me})
w3.eth.wait_for_transaction_receipt(mint, timeout=30, poll_latency=0.05)
entries = events.get_new_entries()
out["eventCount"] = len(entries)
out["eventValue"] = entries[0]["args"]["value"] if entries else None
out["eventTo"] = entries[0]["args"]["to"] if entries else None
out["allEntries"] = len(events.get_all_entries())
out["balance"] = token.functions.balanceOf(other).call()
out["uninstalled"] = w3.eth.uninstall_filter(blocks.filter_id)
print(json.dumps(out))
