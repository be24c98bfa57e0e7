// A mocha test as hardhat users write them: unlocked signers, deploy, transfer, events,
// and the test controls (evm_increaseTime + evm_mine, evm_setNextBlockTimestamp).
const { ethers, network } = require('hardhat')
const assert = require('node:assert/strict')
const { readFileSync } = require('node:fs')

const art = JSON.parse(readFileSync(process.env.ARTIFACTS, 'utf8')).contracts.Token

describe('Token on cairn dev', function () {
  let token, owner, alice

  before(async function () {
    ;[owner, alice] = await ethers.getSigners()
    token = await new ethers.ContractFactory(art.abi, art.bytecode, owner).deploy('Test', 'T')
    await token.waitForDeployment()
  })

  it('mints and transfers with receipts and events', async function () {
    await (await token.mint(owner.address, 1000n)).wait()
    const receipt = await (await token.transfer(alice.address, 250n)).wait()
    assert.equal(receipt.status, 1)
    const events = await token.queryFilter(token.filters.Transfer(owner.address, alice.address), receipt.blockNumber)
    assert.equal(events.length, 1)
    assert.equal(events[0].args.value, 250n)
    assert.equal(await token.balanceOf(alice.address), 250n)
  })

  it('sends ETH from an unlocked account', async function () {
    const before = await ethers.provider.getBalance(alice.address)
    const tx = await owner.sendTransaction({ to: alice.address, value: ethers.parseEther('1') })
    await tx.wait()
    assert.equal(await ethers.provider.getBalance(alice.address), before + ethers.parseEther('1'))
  })

  it('moves time with evm_increaseTime and evm_mine', async function () {
    const start = (await ethers.provider.getBlock('latest')).timestamp
    await network.provider.send('evm_increaseTime', [7200])
    await network.provider.send('evm_mine', [])
    const later = (await ethers.provider.getBlock('latest')).timestamp
    assert.ok(later >= start + 7200, `${later} < ${start} + 7200`)
    const next = later + 1000
    await network.provider.send('evm_setNextBlockTimestamp', [next])
    await network.provider.send('evm_mine', [])
    assert.equal((await ethers.provider.getBlock('latest')).timestamp, next)
  })

  it('refuses evm_snapshot with the reason', async function () {
    await assert.rejects(network.provider.send('evm_snapshot', []), /never rewrites a sealed block/)
  })
})
