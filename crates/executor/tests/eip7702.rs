//! EIP-7702 set-code transactions: the delegation designator an authorization writes is
//! part of the block's state diff (so it is stored, served and survives), a call to the
//! delegated account runs the target's code (in the same block and in the next), a
//! re-delegation replaces it, a delegation to the zero address clears it, and
//! authorizations with a stale nonce or another chain's id are skipped. Every
//! executor and strategy returns exactly what the sequential executor returns.

use alloy_consensus::transaction::SignerRecoverable;
use alloy_primitives::{keccak256, Address, Bytes, U256};
use alloy_signer_local::PrivateKeySigner;
use cairn_executor::{
    BlockContext, BlockOutput, Executor, Mode, ParallelExecutor, SequentialExecutor, Strategy as Algorithm, TxOutcome,
};
use cairn_primitives::{dev_accounts, ChainConfig, GenesisAlloc, InMemoryState, RecoveredTx, StateView, DEV_MNEMONIC};
use cairn_workload::{authorize, mint_call, token_balance_slot, Artifacts, TxFactory};

const CHAIN: u64 = 31337;

struct World {
    signers: Vec<PrivateKeySigner>,
    state: InMemoryState,
    token: Address,
    other: Address,
}

fn world() -> World {
    let accounts = dev_accounts(DEV_MNEMONIC, 4).expect("derive");
    let mut state = InMemoryState::from_alloc(&GenesisAlloc::dev(&accounts));
    let art = Artifacts::load_default().expect("artifacts");
    let token = Address::repeat_byte(0x7a);
    let other = Address::repeat_byte(0x7b);
    state.insert(token, 1, U256::ZERO, art.token_runtime.clone());
    state.insert(other, 1, U256::ZERO, art.token_runtime);
    World { signers: accounts.into_iter().map(|a| a.signer).collect(), state, token, other }
}

fn ctx(number: u64) -> BlockContext {
    let chain = ChainConfig { fee_recipient: Address::repeat_byte(0xfe), ..Default::default() };
    BlockContext::for_chain(&chain, number, 1_700_000_000 + number, 1_000_000_000, Default::default())
}

fn recover(tx: cairn_primitives::TxEnvelope) -> RecoveredTx {
    tx.try_into_recovered().expect("recover")
}

fn designator(target: Address) -> Bytes {
    [&[0xef, 0x01, 0x00][..], target.as_slice()].concat().into()
}

/// Runs `txs` with every executor and strategy; all must equal the sequential result.
fn run(state: &InMemoryState, ctx: &BlockContext, txs: &[RecoveredTx]) -> BlockOutput {
    let expected = SequentialExecutor.execute(state, ctx, txs, Mode::Replay).expect("sequential");
    for algorithm in [Algorithm::Split, Algorithm::Lanes, Algorithm::BlockStm] {
        let exec = ParallelExecutor::new(2).min_parallel_txs(2).always_parallel().strategy(algorithm);
        for mode in [Mode::Replay, Mode::Building] {
            let out = exec.execute(state, ctx, txs, mode).expect("parallel");
            assert_eq!(out, expected, "{algorithm:?} {mode:?}");
        }
    }
    expected
}

fn logs(out: &BlockOutput, i: usize) -> usize {
    match &out.outcomes[i] {
        TxOutcome::Included(r) => {
            assert!(r.success, "transaction {i} failed: {r:?}");
            r.logs.len()
        }
        other => panic!("transaction {i} not included: {other:?}"),
    }
}

fn code_of(state: &InMemoryState, who: Address) -> Bytes {
    let acc = state.account(who).expect("read").expect("account");
    state.code(acc.code_hash).expect("code")
}

#[test]
fn delegation_is_stored_runs_is_replaced_and_cleared() {
    let World { signers, mut state, token, other } = world();
    let (sponsor, authority, caller) = (&signers[0], &signers[1], &signers[2]);
    let f = TxFactory::new(CHAIN);
    let b = authority.address();
    let plain = Address::repeat_byte(0x11);

    // Block 1: the sponsor's type-4 transaction delegates the authority to Token and
    // mints through it at once; a later transaction of the block calls it again.
    let auth = authorize(authority, CHAIN, token, 0).expect("authorize");
    let txs = vec![
        recover(f.set_code(sponsor, 0, b, mint_call(b, U256::from(100)), vec![auth], 200_000).expect("sign")),
        recover(f.call(caller, 0, b, mint_call(caller.address(), U256::from(5)), 200_000).expect("sign")),
    ];
    let out = run(&state, &ctx(1), &txs);
    assert_eq!((logs(&out, 0), logs(&out, 1)), (1, 1), "both mints ran Token's code and logged a Transfer");
    let code_hash = keccak256(designator(token));
    assert_eq!(out.diff.code.get(&code_hash), Some(&designator(token)), "the designator is in the diff");
    state.apply(&out.diff);
    assert_eq!(code_of(&state, b), designator(token));
    assert_eq!(state.account(b).expect("read").expect("account").nonce, 1, "the authorization bumped its nonce");
    assert_eq!(state.storage(b, token_balance_slot(b)).expect("slot"), U256::from(100), "minted in its own storage");

    // Block 2: the code is read back from the state; the authority re-delegates to
    // another contract by sending its own type-4 transaction (its authorization nonce
    // is its transaction nonce + 1).
    let auth = authorize(authority, CHAIN, other, 2).expect("authorize");
    let txs = vec![
        recover(f.call(caller, 1, b, mint_call(caller.address(), U256::from(7)), 200_000).expect("sign")),
        recover(f.set_code(authority, 1, plain, Vec::new(), vec![auth], 200_000).expect("sign")),
    ];
    let out = run(&state, &ctx(2), &txs);
    assert_eq!(logs(&out, 0), 1, "the delegated code ran from the stored designator");
    logs(&out, 1);
    state.apply(&out.diff);
    assert_eq!(code_of(&state, b), designator(other), "re-delegated");

    // Block 3: a stale-nonce authorization and another chain's are skipped (the
    // transactions still run); then a delegation to the zero address clears the code.
    let stale = authorize(authority, CHAIN, token, 0).expect("authorize");
    let foreign = authorize(authority, CHAIN + 1, token, 3).expect("authorize");
    let txs = vec![recover(f.set_code(sponsor, 1, plain, Vec::new(), vec![stale, foreign], 200_000).expect("sign"))];
    let out = run(&state, &ctx(3), &txs);
    logs(&out, 0);
    state.apply(&out.diff);
    assert_eq!(code_of(&state, b), designator(other), "neither authorization applied");
    assert_eq!(state.account(b).expect("read").expect("account").nonce, 3, "nor bumped the nonce");

    let clear = authorize(authority, 0, Address::ZERO, 3).expect("authorize");
    let txs = vec![recover(f.set_code(sponsor, 2, plain, Vec::new(), vec![clear], 200_000).expect("sign"))];
    let out = run(&state, &ctx(4), &txs);
    logs(&out, 0);
    state.apply(&out.diff);
    let acc = state.account(b).expect("read").expect("account");
    assert_eq!(acc.code_hash, alloy_primitives::KECCAK256_EMPTY, "cleared (chain id 0 is valid on any chain)");
    assert_eq!(acc.nonce, 4);
    assert_eq!(state.storage(b, token_balance_slot(b)).expect("slot"), U256::from(100), "storage is kept");
}
