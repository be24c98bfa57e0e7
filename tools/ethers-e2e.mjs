// End-to-end with ethers 6 (npm, pinned in tools/): the ordinary flow of an ethers user
// against a fresh `cairn dev`, run by crates/node/tests/e2e_ethers.rs. Sends ETH and
// waits (`tx.wait()`), deploys with a ContractFactory and `waitForDeployment()`, calls
// and waits, listens with `contract.on` over HTTP (filters) and WebSocket
// (subscriptions), and uses a filter directly. Prints one JSON line.
import { readFileSync } from 'node:fs'
import { ContractFactory, Contract, JsonRpcProvider, WebSocketProvider, Wallet, parseEther } from 'ethers'

const [url, artifactsPath] = process.argv.slice(2)
const artifacts = JSON.parse(readFileSync(artifactsPath, 'utf8')).contracts.Token
const out = {}
// A bound on each wait; the timer does not keep the process alive once all is done.
const withTimeout = (p, ms, what) =>
  Promise.race([p, new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms).unref())])

// cacheTimeout -1: ethers caches identical requests for 250 ms, so on a node that
// mines within 250 ms the next send reuses the previous `pending` nonce ("nonce has
// already been used"); anvil fails the same loop the same way without it.
const provider = new JsonRpcProvider(url, undefined, { staticNetwork: true, pollingInterval: 100, cacheTimeout: -1 })
const wallet = new Wallet('0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80', provider)
const to = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8'

// 1. send + wait, several times (the receipt must carry a block hash)
const waits = []
for (let i = 0; i < 5; i++) {
  const started = Date.now()
  const tx = await wallet.sendTransaction({ to, value: parseEther('0.01') })
  const receipt = await withTimeout(tx.wait(), 20000, 'tx.wait')
  waits.push(Date.now() - started)
  out.sendStatus = receipt.status
  out.sendBlockHash = receipt.blockHash
  const block = await provider.getBlock(receipt.blockNumber)
  out.blockHashMatches = block.hash === receipt.blockHash
  out.confirmations = await receipt.confirmations()
}
out.waitMs = waits

// 2. ContractFactory deploy + waitForDeployment, then a call and its events
const factory = new ContractFactory(artifacts.abi, artifacts.bytecode, wallet)
const token = await factory.deploy('Ethers', 'ETH6')
await withTimeout(token.waitForDeployment(), 20000, 'waitForDeployment')
const address = await token.getAddress()
out.deployed = (await provider.getCode(address)).length > 2
out.symbol = await token.symbol()

// 3. contract.on over HTTP (eth_newFilter / eth_getFilterChanges) and WebSocket
const ws = new WebSocketProvider(url.replace('http', 'ws'), undefined, { staticNetwork: true })
const wsToken = new Contract(address, artifacts.abi, ws)
let httpEvent, wsEvent
const httpSeen = new Promise((resolve) => { httpEvent = resolve })
const wsSeen = new Promise((resolve) => { wsEvent = resolve })
await token.on('Transfer', (from, dest, value) => httpEvent({ from, dest, value: value.toString() }))
await wsToken.on('Transfer', (from, dest, value) => wsEvent({ from, dest, value: value.toString() }))
const mint = await token.mint(to, 1234n)
const mintReceipt = await withTimeout(mint.wait(), 20000, 'mint.wait')
out.mintStatus = mintReceipt.status
out.mintLogs = mintReceipt.logs.length
out.httpEvent = await withTimeout(httpSeen, 20000, 'contract.on over HTTP')
out.wsEvent = await withTimeout(wsSeen, 20000, 'contract.on over WebSocket')
out.balance = (await token.balanceOf(to)).toString()
await token.removeAllListeners()
await wsToken.removeAllListeners()

// 4. a block filter by hand, as libraries that poll do
const filterId = await provider.send('eth_newBlockFilter', [])
const tx = await wallet.sendTransaction({ to, value: 1n })
const r = await withTimeout(tx.wait(), 20000, 'tx.wait (filter)')
const changes = await provider.send('eth_getFilterChanges', [filterId])
out.filterSawBlock = changes.includes(r.blockHash)
out.uninstalled = await provider.send('eth_uninstallFilter', [filterId])

await ws.destroy()
provider.destroy()
console.log(JSON.stringify(out))
