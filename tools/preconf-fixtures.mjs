// Generates the golden fixtures of `cairn preconf verify` with viem (an implementation
// of EIP-712 independent of Cairn's): signed fragments and sealed blocks, each file
// naming the verdict Cairn must reach. Run once; the files are committed:
//   node tools/preconf-fixtures.mjs crates/node/tests/fixtures/preconf
import { writeFileSync } from 'node:fs'
import { keccak256, toHex, hashTypedData } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'

const out = process.argv[2]
const chainId = 31337
const domain = { name: 'Cairn Preconfirmation', version: '1', chainId }
const types = {
  Fragment: [
    { name: 'height', type: 'uint64' },
    { name: 'index', type: 'uint32' },
    { name: 'parent', type: 'bytes32' },
    { name: 'timestamp', type: 'uint64' },
    { name: 'baseFee', type: 'uint64' },
    { name: 'firstTx', type: 'uint32' },
    { name: 'transactions', type: 'bytes32[]' },
    { name: 'gasUsed', type: 'uint64' },
    { name: 'receiptsHash', type: 'bytes32' },
    { name: 'stateDiffHash', type: 'bytes32' },
  ],
}
// anvil's keys #1 and #2 (public test keys)
const sequencer = privateKeyToAccount('0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d')
const other = privateKeyToAccount('0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdd4ba8a')
const tx = (n) => keccak256(toHex(`tx-${n}`))
const base = {
  height: 5, index: 2, parent: keccak256(toHex('parent')), timestamp: 1_763_700_000, baseFee: 1_000_000_000,
  firstTx: 10, transactions: [tx(10), tx(11), tx(12)], gasUsed: 10 * 21_000 + 3 * 21_000,
  receiptsHash: keccak256(toHex('receipts')), stateDiffHash: keccak256(toHex('diff')),
}
const hash = (f) => hashTypedData({ domain, types, primaryType: 'Fragment', message: f })
async function sign(f, key = sequencer) {
  const signature = await key.signTypedData({ domain, types, primaryType: 'Fragment', message: f })
  return { chainId, ...f, signature, hash: hash(f) }
}
const write = (name, value) => writeFileSync(`${out}/${name}.json`, JSON.stringify(value, null, 2) + '\n')

const a = await sign(base)
const next = { ...base, index: 3, parent: hash(base), firstTx: 13, transactions: [tx(13)], gasUsed: base.gasUsed + 21_000 }
write('pair-same-position', { expect: 'samePosition', a, b: await sign({ ...base, transactions: [tx(10), tx(12), tx(11)] }) })
write('pair-same-parent', { expect: 'sameParent', a, b: await sign({ ...base, height: 6, index: 0, firstTx: 0, transactions: [tx(99)] }) })
write('pair-broken-chain', { expect: 'brokenChain', a, b: await sign({ ...next, parent: keccak256(toHex('elsewhere')) }) })
write('pair-overlapping-positions', { expect: 'inconsistent', a, b: await sign({ ...next, firstTx: 12 }) })
write('pair-consistent-successor', { expect: 'none', a, b: await sign(next) })
write('pair-same-fragment', { expect: 'none', a, b: a })
write('pair-different-signers', { expect: 'error', a, b: await sign({ ...base, transactions: [tx(1)] }, other) })
write('pair-tampered', { expect: 'error', a, b: { ...(await sign({ ...base, transactions: [tx(7)] })), gasUsed: 1 } })

const block = (transactions, extra = {}) => ({
  number: toHex(base.height), timestamp: toHex(base.timestamp), baseFeePerGas: toHex(base.baseFee),
  gasUsed: toHex(20 * 21_000), transactions, ...extra,
})
const txs = Array.from({ length: 20 }, (_, i) => tx(i))
write('block-promise-kept', { expect: 'none', fragment: a, block: block(txs) })
const swapped = [...txs]; [swapped[10], swapped[11]] = [swapped[11], swapped[10]]
write('block-promise-reordered', { expect: 'broken', fragment: a, block: block(swapped) })
write('block-promise-missing', { expect: 'broken', fragment: a, block: block(txs.slice(0, 11)) })
write('block-promise-other-timestamp', { expect: 'broken', fragment: a, block: block(txs, { timestamp: toHex(base.timestamp + 1) }) })
console.log(JSON.stringify({ sequencer: sequencer.address, other: other.address }))
