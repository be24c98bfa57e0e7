// A deploy script: ContractFactory + waitForDeployment with the first unlocked account,
// then a mint; prints {token, balance} as one JSON line.
const { ethers } = require('hardhat')
const { readFileSync } = require('node:fs')

async function main() {
  const art = JSON.parse(readFileSync(process.env.ARTIFACTS, 'utf8')).contracts.Token
  const [owner] = await ethers.getSigners()
  const factory = new ethers.ContractFactory(art.abi, art.bytecode, owner)
  const token = await factory.deploy('Hardhat', 'HH')
  await token.waitForDeployment()
  await (await token.mint(owner.address, 42n)).wait()
  const balance = await token.balanceOf(owner.address)
  console.log(JSON.stringify({ token: await token.getAddress(), owner: owner.address, balance: balance.toString() }))
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
