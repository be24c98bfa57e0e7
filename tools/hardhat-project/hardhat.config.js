// A hardhat 2 project as a user would point it at `cairn dev`: the `cairn` network uses
// the node's unlocked development accounts (eth_accounts / eth_sendTransaction).
// Run by crates/node/tests/e2e_hardhat.rs with CAIRN_URL set. No Solidity sources:
// the shared test contracts come precompiled (ARTIFACTS), so nothing is downloaded.
require('@nomicfoundation/hardhat-ethers')

module.exports = {
  defaultNetwork: 'cairn',
  networks: {
    cairn: { url: process.env.CAIRN_URL || 'http://127.0.0.1:8545', timeout: 60000 },
  },
  mocha: { timeout: 60000 },
}
