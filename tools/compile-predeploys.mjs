// Compiles Cairn's predeployed contracts (contracts/*.sol) with solc-js (npm, pinned in
// tools/) and prints {name: runtimeBytecodeHex}. Used by the predeploy test to check
// that the bytecode in crates/primitives/src/predeploys/ is what the sources compile to.
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import solc from 'solc'

const dir = process.argv[2]
const sources = {}
for (const f of readdirSync(dir).filter((f) => f.endsWith('.sol'))) {
  sources[f] = { content: readFileSync(join(dir, f), 'utf8') }
}
const input = {
  language: 'Solidity',
  sources,
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: 'cancun',
    metadata: { bytecodeHash: 'none', appendCBOR: false },
    outputSelection: { '*': { '*': ['evm.deployedBytecode.object'] } },
  },
}
const out = JSON.parse(solc.compile(JSON.stringify(input)))
const errors = (out.errors || []).filter((e) => e.severity === 'error')
if (errors.length) {
  console.error(errors.map((e) => e.formattedMessage).join('\n'))
  process.exit(1)
}
const result = {}
for (const file of Object.keys(out.contracts)) {
  for (const [name, c] of Object.entries(out.contracts[file])) {
    result[name] = '0x' + c.evm.deployedBytecode.object
  }
}
console.log(JSON.stringify(result))
