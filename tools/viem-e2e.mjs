// End-to-end with viem (the README's example, extended): run by
// crates/node/tests/e2e_viem.rs against a fresh `cairn dev`. Prints one JSON line.
import { createPublicClient, createWalletClient, defineChain, hashTypedData, http, parseAbi, parseEther, verifyTypedData, webSocket } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'

const url = process.argv[2]
const cairn = defineChain({
  id: 31337,
  name: 'cairn-dev',
  nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
  rpcUrls: { default: { http: [url], webSocket: [url.replace('http', 'ws')] } },
  // The predeployed Multicall3-compatible contract of cairn dev's default genesis.
  contracts: { multicall3: { address: '0xcA11bde05977b3631167028862bE2a173976CA11' } },
})
const account = privateKeyToAccount('0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80')
const wallet = createWalletClient({ account, chain: cairn, transport: http() })
const client = createPublicClient({ chain: cairn, transport: http() })
const ws = createPublicClient({ chain: cairn, transport: webSocket() })

const to = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8'
const before = await client.getBalance({ address: to })
const heads = []
let onHead = () => {}
const firstHead = new Promise((resolve) => { onHead = resolve })
// resolves once the node has confirmed the subscription
const { unsubscribe } = await ws.transport.subscribe({
  params: ['newHeads'],
  onData: (data) => { heads.push(data.result); onHead() },
  onError: () => {},
})
const hash = await wallet.sendTransaction({ to, value: parseEther('1') })
const receipt = await client.waitForTransactionReceipt({ hash, pollingInterval: 50 })
const after = await client.getBalance({ address: to })
const block = await client.getBlock({ blockNumber: receipt.blockNumber })
const fees = await client.estimateFeesPerGas()
let rejected = ''
try {
  await wallet.sendTransaction({ to, value: parseEther('1'), nonce: 0 })
} catch (e) {
  rejected = e.details ?? e.shortMessage ?? String(e)
}
// the block with our transaction must be announced (bounded wait, event-driven)
await Promise.race([firstHead, new Promise((resolve) => setTimeout(resolve, 10000))])
await unsubscribe()

// Preconfirmations: a signed fragment checked with viem's EIP-712 implementation,
// knowing only the sequencer's address; the same fragment on the cairn_fragments stream.
const sequencer = await client.request({ method: 'cairn_sequencer', params: [] })
const streamed = []
let onFragment = () => {}
const fragmentSeen = new Promise((resolve) => { onFragment = resolve })
const frags = await ws.transport.subscribe({
  params: ['cairn_fragments'],
  onData: (data) => { streamed.push(data.result); onFragment() },
  onError: () => {},
})
const raw = await wallet.signTransaction(await wallet.prepareTransactionRequest({ to, value: 1n }))
const pre = await client.request({ method: 'cairn_sendRawTransactionPreconfirmed', params: [raw] })
const f = pre.fragment
const message = {
  height: BigInt(f.height), index: f.index, parent: f.parent, timestamp: BigInt(f.timestamp),
  baseFee: BigInt(f.baseFee), firstTx: f.firstTx, transactions: f.transactions, gasUsed: BigInt(f.gasUsed),
  receiptsHash: f.receiptsHash, stateDiffHash: f.stateDiffHash,
}
const typed = { domain: sequencer.domain, types: sequencer.types, primaryType: 'Fragment', message }
const preconfVerified = await verifyTypedData({ address: sequencer.address, ...typed, signature: f.signature })
const preconfHashMatches = hashTypedData(typed) === f.hash
const tampered = await verifyTypedData({ address: sequencer.address, ...typed, message: { ...message, gasUsed: message.gasUsed + 1n }, signature: f.signature })
await Promise.race([fragmentSeen, new Promise((resolve) => setTimeout(resolve, 10000))])
const streamedHasTx = streamed.some((s) => s.hash === f.hash && s.transactions.includes(pre.transactionHash) && s.receipts.length === s.transactions.length)
await frags.unsubscribe()
// EIP-7966 through viem's own action: the receipt comes back preconfirmed
const raw2 = await wallet.signTransaction(await wallet.prepareTransactionRequest({ to, value: 1n }))
const syncReceipt = await wallet.sendRawTransactionSync({ serializedTransaction: raw2 })
const syncBlock = await client.getBlock({ blockNumber: syncReceipt.blockNumber })
const status = await client.request({ method: 'cairn_getTransactionStatus', params: [pre.transactionHash] })
// viem's multicall through the predeployed Multicall3, and simulateContract.
const multicallAbi = parseAbi([
  'function getChainId() view returns (uint256)',
  'function getEthBalance(address) view returns (uint256)',
  'function getBlockNumber() view returns (uint256)',
])
const mc = '0xcA11bde05977b3631167028862bE2a173976CA11'
const multicall = await client.multicall({
  contracts: [
    { address: mc, abi: multicallAbi, functionName: 'getChainId' },
    { address: mc, abi: multicallAbi, functionName: 'getEthBalance', args: [to] },
    { address: to, abi: multicallAbi, functionName: 'getChainId' },
  ],
})
const simulated = await client.simulateContract({ account, address: mc, abi: multicallAbi, functionName: 'getChainId' })
await ws.transport.getRpcClient().then((c) => c.close())
console.log(JSON.stringify({
  multicallChainId: multicall[0].status === 'success' ? multicall[0].result.toString() : multicall[0].error?.message,
  multicallBalanceMatches: multicall[1].status === 'success' && multicall[1].result === (await client.getBalance({ address: to })),
  multicallFailureReported: multicall[2].status === 'failure',
  simulatedChainId: simulated.result.toString(),
  status: receipt.status,
  gasUsed: receipt.gasUsed.toString(),
  delta: (after - before).toString(),
  blockHasTx: block.transactions.includes(hash),
  maxFeePerGas: fees.maxFeePerGas.toString(),
  rejected,
  headsSeen: heads.length,
  preconfVerified,
  preconfHashMatches,
  preconfTamperedRejected: !tampered,
  preconfInFragment: f.transactions.includes(pre.transactionHash) && pre.receipt.transactionHash === pre.transactionHash,
  streamedHasTx,
  syncStatus: syncReceipt.status,
  syncBlockHasTx: syncBlock.transactions.includes(syncReceipt.transactionHash),
  statusTier: status.status,
  statusHistory: status.history.map((s) => s.tier),
}))
process.exit(0)
