// A mocha test as hardhat users write them: unlocked signers, deploy, transfer, events,
// and the test controls (evm_increaseTime + evm_mine, evm_setNextBlockTimestamp,
// hardhat_setBalance / setCode / setStorageAt, impersonated signers).
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

  it('edits state and sends from an impersonated account', async function () {
    // An address nobody has the key of, funded by hardhat_setBalance.
    const whale = '0x00000000219ab540356cBB839Cbe05303d7705Fa'
    await network.provider.send('hardhat_setBalance', [whale, '0x56bc75e2d63100000'])
    assert.equal(await ethers.provider.getBalance(whale), ethers.parseEther('100'))
    const signer = await ethers.getImpersonatedSigner(whale)
    const tx = await signer.sendTransaction({ to: alice.address, value: 12345n })
    const receipt = await tx.wait()
    assert.equal(receipt.status, 1)
    assert.equal(receipt.from.toLowerCase(), whale.toLowerCase())
    const fetched = await ethers.provider.getTransaction(tx.hash)
    assert.equal(fetched.from.toLowerCase(), whale.toLowerCase())
    // Tokens held by the impersonated account move under its name.
    await (await token.mint(whale, 77n)).wait()
    await (await token.connect(signer).transfer(alice.address, 7n)).wait()
    assert.equal(await token.balanceOf(whale), 70n)
    await network.provider.send('hardhat_stopImpersonatingAccount', [whale])
    // Code and storage.
    const target = '0x000000000000000000000000000000000000c0de'
    await network.provider.send('hardhat_setCode', [target, '0x602a5f5260205ff3'])
    assert.equal(await ethers.provider.call({ to: target }), ethers.toBeHex(42n, 32))
    await network.provider.send('hardhat_setStorageAt', [target, '0x0', ethers.toBeHex(5n, 32)])
    assert.equal(await ethers.provider.getStorage(target, 0), ethers.toBeHex(5n, 32))
  })

  it('refuses evm_snapshot with the reason', async function () {
    await assert.rejects(network.provider.send('evm_snapshot', []), /never rewrites a sealed block/)
  })
})
