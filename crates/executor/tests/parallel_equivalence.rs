//! Adversarial equivalence: random blocks mixing ETH transfers, `Token` transfers,
//! approvals and transferFroms, `Pair` swaps on one hot pool and on several pools,
//! contract deployments, self-destructs, reverting and out-of-gas calls, nonce chains,
//! nonce gaps, unaffordable transactions and reads/spends of the fee recipient's
//! balance. For every generated block the parallel executor (2 and 4 threads) must
//! return exactly what the sequential executor returns, in building and replay mode.

use alloy_primitives::{Address, Bytes, TxKind, B256, U256};
use cairn_executor::{BlockContext, Executor, Mode, ParallelExecutor, SequentialExecutor, Strategy as Algorithm};
use cairn_primitives::{ChainConfig, InMemoryState, RecoveredTx};
use cairn_workload::gigagas::{address, recovered};
use cairn_workload::{approve_call, swap_call, token_allowance_slot, token_balance_slot, transfer_call, Artifacts};
use proptest::prelude::*;

const SENDERS: u64 = 6;
const POOLS: u64 = 3;

fn sender(i: u64) -> Address {
    address(0x10, i)
}
fn token() -> Address {
    address(0x30, 1)
}
fn token1() -> Address {
    address(0x30, 2)
}
fn pool(p: u64) -> Address {
    address(0x50, p)
}
/// Runtime `COINBASE BALANCE PUSH0 SSTORE STOP`: stores the fee recipient's balance.
fn coinbase_reader() -> Address {
    address(0x60, 1)
}
/// Runtime `PUSH0 PUSH0 REVERT`.
fn reverter() -> Address {
    address(0x60, 2)
}
/// Runtime `CALLER SELFDESTRUCT`: sends its balance to the caller.
fn destructor() -> Address {
    address(0x60, 3)
}
const BENEFICIARY: Address = Address::new([0xbe; 20]);

/// Init code that self-destructs to `COINBASE` during its own creation.
const SUICIDE_INIT: [u8; 2] = [0x41, 0xff];
/// Init code deploying `CALLER SELFDESTRUCT` (runtime `33 ff`).
const DESTRUCTOR_INIT: [u8; 12] = [0x61, 0x33, 0xff, 0x5f, 0x52, 0x60, 0x02, 0x60, 0x1e, 0xf3, 0x00, 0x00];

fn world() -> (InMemoryState, BlockContext) {
    let artifacts = Artifacts::load_default().expect("artifacts");
    let mut state = InMemoryState::default();
    for i in 0..SENDERS {
        state.insert(sender(i), 0, U256::from(10u128.pow(18)), Bytes::new());
    }
    state.insert(BENEFICIARY, 0, U256::from(10u128.pow(18)), Bytes::new());
    // Pair runtime code (its immutables are the two tokens) from a real deployment.
    let deployer = address(0x40, 0);
    state.insert(deployer, 0, U256::from(10u128.pow(20)), Bytes::new());
    let create = recovered(
        deployer,
        0,
        TxKind::Create,
        U256::ZERO,
        artifacts.pair_deploy(token(), token1()).to_vec(),
        3_000_000,
    );
    let mut ctx =
        BlockContext::for_chain(&ChainConfig::default(), 1, 1_700_000_000, 1_000_000_000, B256::repeat_byte(1));
    ctx.beneficiary = BENEFICIARY;
    ctx.gas_limit = 30_000_000;
    let out = SequentialExecutor.execute(&state, &ctx, &[create], Mode::Replay).expect("deploy pair");
    let pair_code = out.diff.code.values().next().expect("pair code").clone();
    state.insert(token(), 1, U256::ZERO, artifacts.token_runtime.clone());
    state.insert(token1(), 1, U256::ZERO, artifacts.token_runtime.clone());
    let reserve = U256::from(10u128.pow(24));
    for p in 0..POOLS {
        state.insert(pool(p), 1, U256::ZERO, pair_code.clone());
        state.storage.entry(pool(p)).or_default().insert(U256::ZERO, reserve | (reserve << 112));
        for t in [token(), token1()] {
            state.storage.entry(t).or_default().insert(token_balance_slot(pool(p)), reserve);
        }
    }
    let everyone: Vec<Address> = (0..SENDERS).map(sender).chain([BENEFICIARY]).collect();
    for holder in &everyone {
        let slots = state.storage.entry(token()).or_default();
        slots.insert(token_balance_slot(*holder), U256::from(1_000_000u64));
        for p in 0..POOLS {
            slots.insert(token_allowance_slot(*holder, pool(p)), U256::MAX);
        }
    }
    state.insert(coinbase_reader(), 1, U256::ZERO, Bytes::from_static(&[0x41, 0x31, 0x5f, 0x55, 0x00]));
    state.insert(reverter(), 1, U256::ZERO, Bytes::from_static(&[0x5f, 0x5f, 0xfd]));
    state.insert(destructor(), 1, U256::from(5_000u64), Bytes::from_static(&[0x33, 0xff]));
    (state, ctx)
}

#[derive(Debug, Clone)]
enum Op {
    Eth { to: u8, value: u64 },
    TokenTransfer { to: u8, amount: u64 },
    Approve { spender: u8, amount: u64 },
    TransferFrom { owner: u8, to: u8, amount: u64 },
    Swap { pool: u8, amount: u64 },
    DeployToken,
    DeploySuicide,
    DeployDestructor,
    CallDestructor,
    Revert,
    OutOfGas,
    ReadCoinbase,
    Unaffordable,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..10, 1u64..1_000_000).prop_map(|(to, value)| Op::Eth { to, value }),
        4 => (0u8..10, 0u64..2_000_000).prop_map(|(to, amount)| Op::TokenTransfer { to, amount }),
        1 => (0u8..8, 0u64..1_000).prop_map(|(spender, amount)| Op::Approve { spender, amount }),
        2 => (0u8..8, 0u8..10, 0u64..500).prop_map(|(owner, to, amount)| Op::TransferFrom { owner, to, amount }),
        3 => (0u8..4, 1u64..100_000).prop_map(|(pool, amount)| Op::Swap { pool, amount }),
        1 => Just(Op::DeployToken),
        1 => Just(Op::DeploySuicide),
        1 => Just(Op::DeployDestructor),
        1 => Just(Op::CallDestructor),
        1 => Just(Op::Revert),
        1 => Just(Op::OutOfGas),
        1 => Just(Op::ReadCoinbase),
        1 => Just(Op::Unaffordable),
    ]
}

/// Who an index names: a sender, the fee recipient, a fresh account or a contract.
fn party(i: u8) -> Address {
    match i {
        0..=5 => sender(i as u64),
        6 => BENEFICIARY,
        7 => address(0x70, 7),
        8 => token(),
        _ => coinbase_reader(),
    }
}

/// Sender 6 is the fee recipient itself. Nonce tweaks: 0 in order, 1 a gap, 2 a replay.
fn build(ops: &[(u8, Op, u8)]) -> Vec<RecoveredTx> {
    let mut nonces = [0u64; 7];
    let mut deployed = Vec::new();
    ops.iter()
        .map(|(who, op, tweak)| {
            let who = (*who % 7) as usize;
            let from = if who == 6 { BENEFICIARY } else { sender(who as u64) };
            let nonce = match tweak % 8 {
                1 => nonces[who] + 1,
                2 => nonces[who].saturating_sub(1),
                _ => nonces[who],
            };
            nonces[who] += 1;
            let call = |to: Address, input: Vec<u8>, gas: u64| {
                recovered(from, nonce, TxKind::Call(to), U256::ZERO, input, gas)
            };
            match op {
                Op::Eth { to, value } => {
                    recovered(from, nonce, TxKind::Call(party(*to)), U256::from(*value), Vec::new(), 21_000)
                }
                Op::TokenTransfer { to, amount } => {
                    call(token(), transfer_call(party(*to), U256::from(*amount)), 80_000)
                }
                Op::Approve { spender, amount } => {
                    call(token(), approve_call(party(*spender), U256::from(*amount)), 80_000)
                }
                Op::TransferFrom { owner, to, amount } => {
                    let input = cairn_workload::transfer_from_call(party(*owner), party(*to), U256::from(*amount));
                    call(token(), input, 90_000)
                }
                Op::Swap { pool: p, amount } => {
                    let p = (*p as u64).min(POOLS - 1);
                    call(pool(p), swap_call(true, U256::from(*amount), U256::ZERO, from), 200_000)
                }
                Op::DeployToken => {
                    let code = Artifacts::load_default().expect("artifacts").token_deploy("T", "T");
                    deployed.push(from.create(nonce));
                    recovered(from, nonce, TxKind::Create, U256::ZERO, code.to_vec(), 2_000_000)
                }
                Op::DeploySuicide => {
                    recovered(from, nonce, TxKind::Create, U256::from(7u64), SUICIDE_INIT.to_vec(), 100_000)
                }
                Op::DeployDestructor => {
                    deployed.push(from.create(nonce));
                    recovered(from, nonce, TxKind::Create, U256::from(11u64), DESTRUCTOR_INIT.to_vec(), 100_000)
                }
                Op::CallDestructor => {
                    let target = deployed.last().copied().unwrap_or_else(destructor);
                    call(target, Vec::new(), 60_000)
                }
                Op::Revert => call(reverter(), Vec::new(), 30_000),
                Op::OutOfGas => call(token(), transfer_call(party(0), U256::from(1u64)), 23_000),
                Op::ReadCoinbase => call(coinbase_reader(), Vec::new(), 60_000),
                Op::Unaffordable => {
                    recovered(from, nonce, TxKind::Call(party(7)), U256::from(10u128.pow(30)), Vec::new(), 21_000)
                }
            }
        })
        .collect()
}

fn check(state: &InMemoryState, ctx: &BlockContext, txs: &[RecoveredTx]) -> Result<(), TestCaseError> {
    for mode in [Mode::Building, Mode::Replay] {
        let expected = SequentialExecutor.execute(state, ctx, txs, mode).map_err(|e| e.to_string());
        for threads in [2, 4] {
            for parallel in [
                // Two threads: the lanes; more: Block-STM.
                ParallelExecutor::new(threads).min_parallel_txs(2).always_parallel(),
                ParallelExecutor::new(threads).min_parallel_txs(2).always_parallel().strategy(Algorithm::BlockStm),
                // Two halves at once (on two threads; Block-STM on more).
                ParallelExecutor::new(threads).min_parallel_txs(2).always_parallel().strategy(Algorithm::Split),
                ParallelExecutor::new(threads)
                    .min_parallel_txs(2)
                    .sequential_below(std::time::Duration::ZERO)
                    .strategy(Algorithm::Split),
                ParallelExecutor::new(threads).min_parallel_txs(2),
                // The timing probe, then the lanes or Block-STM on the rest of the block.
                ParallelExecutor::new(threads).min_parallel_txs(2).sequential_below(std::time::Duration::ZERO),
            ] {
                let got = parallel.execute(state, ctx, txs, mode).map_err(|e| e.to_string());
                prop_assert_eq!(&got, &expected, "{:?} mode, {:?}", mode, parallel);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0xca1e),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn parallel_equals_sequential_on_random_blocks(
        ops in proptest::collection::vec((0u8..7, op(), 0u8..40), 1..60),
    ) {
        let (state, ctx) = world();
        check(&state, &ctx, &build(&ops))?;
    }

    /// One sender with many consecutive nonces, interleaved with others.
    #[test]
    fn parallel_equals_sequential_on_nonce_chains(
        ops in proptest::collection::vec((prop_oneof![3 => Just(0u8), 1 => 1u8..7], op(), 0u8..40), 20..80),
    ) {
        let (state, ctx) = world();
        check(&state, &ctx, &build(&ops))?;
    }
}

#[test]
fn building_mode_skips_what_does_not_fit_like_the_sequential_executor() {
    let (state, mut ctx) = world();
    ctx.gas_limit = 300_000;
    let ops: Vec<(u8, Op, u8)> =
        (0..40).map(|i| (i % 6, Op::TokenTransfer { to: (i + 1) % 6, amount: 10 }, 0)).collect();
    let txs = build(&ops);
    check(&state, &ctx, &txs).expect("equal");
    let out = ParallelExecutor::new(2)
        .min_parallel_txs(2)
        .always_parallel()
        .execute(&state, &ctx, &txs, Mode::Building)
        .expect("building");
    assert!(out.gas_used <= ctx.gas_limit);
    assert!(out
        .outcomes
        .iter()
        .any(|o| matches!(o, cairn_executor::TxOutcome::Skipped(cairn_executor::Skip::BlockFull { .. }))));
}

/// Transactions as `build` takes them.
type Ops = Vec<(u8, Op, u8)>;

/// Blocks built from `ops`, each with whether the parallel executor (probe on, no
/// minimum time) should predict it sequential: in every mode its output equals the
/// sequential executor's, and the prediction is as expected.
fn check_predictions(cases: [(Ops, bool); 2], modes: &[Mode]) {
    let (state, ctx) = world();
    let exec = ParallelExecutor::new(2).min_parallel_txs(2).sequential_below(std::time::Duration::ZERO);
    for (ops, sequential) in cases {
        let txs = build(&ops);
        for &mode in modes {
            let expected = SequentialExecutor.execute(&state, &ctx, &txs, mode).expect("sequential");
            let (out, stats) = exec
                .execute_with_stats(&state, &ctx, &txs, mode, cairn_executor::Offsets::default())
                .expect("parallel");
            assert_eq!(out, expected);
            assert_eq!(stats.predicted_sequential, usize::from(sequential), "{stats:?}");
            assert_eq!(stats.parallel_txs > 0, !sequential, "{stats:?}");
        }
    }
}

/// The probe's second rule: when every probed transaction wrote one storage slot (swaps
/// on one pool all write its reserves), the block stays sequential; token transfers
/// around a ring write storage too, but no slot common to all, so Block-STM runs the
/// rest. Both equal the sequential executor.
#[test]
fn probed_transactions_that_all_write_one_slot_stay_sequential() {
    check_predictions(
        [
            ((0..24).map(|i| (i % 6, Op::Swap { pool: 0, amount: 1_000 + u64::from(i) }, 0)).collect(), true),
            ((0..24).map(|i| (i % 6, Op::TokenTransfer { to: (i + 1) % 6, amount: 10 }, 0)).collect(), false),
        ],
        &[Mode::Replay],
    );
}

/// The chain rule, looked at after the probe: a block whose transactions mostly come
/// from one sender (one nonce chain) runs its rest sequentially on top of the probed
/// part; a block spread over senders runs in parallel. Both equal the sequential
/// executor.
#[test]
fn one_senders_chain_runs_sequentially_after_the_probe() {
    check_predictions(
        [
            ((0..24).map(|i| (0, Op::TokenTransfer { to: 1 + i % 5, amount: 10 }, 0)).collect(), true),
            ((0..24).map(|i| (i % 6, Op::TokenTransfer { to: (i + 1) % 6, amount: 10 }, 0)).collect(), false),
        ],
        &[Mode::Replay, Mode::Building],
    );
}

/// Payments between distinct accounts (the split's helper run holds) and payments all
/// into one account (refuted at its first transaction): the split strategy equals the
/// sequential executor on both, in both modes. (Which transactions the helper ran
/// depends on timing; `split::tests` checks the verdicts themselves.)
/// `n` funded payers (`sender(100 + i)`) and the beneficiary.
fn payers(n: u64) -> InMemoryState {
    let mut state = InMemoryState::default();
    for i in 0..n {
        state.insert(sender(100 + i), 0, U256::from(10u128.pow(18)), Bytes::new());
    }
    state.insert(BENEFICIARY, 0, U256::from(10u128.pow(18)), Bytes::new());
    state
}

/// Runs `txs` with `exec` in both modes, checks each output against the sequential
/// executor's and that the whole block took the parallel path; the stats per mode.
fn same_as_sequential(
    exec: &ParallelExecutor,
    state: &InMemoryState,
    ctx: &BlockContext,
    txs: &[RecoveredTx],
) -> Vec<cairn_executor::ParallelStats> {
    [Mode::Replay, Mode::Building]
        .into_iter()
        .map(|mode| {
            let expected = SequentialExecutor.execute(state, ctx, txs, mode).expect("sequential");
            let (out, stats) =
                exec.execute_with_stats(state, ctx, txs, mode, cairn_executor::Offsets::default()).expect("parallel");
            assert_eq!(out, expected);
            assert_eq!(stats.parallel_txs, txs.len(), "{stats:?}");
            stats
        })
        .collect()
}

#[test]
fn the_split_equals_sequential_on_independent_and_dependent_payments() {
    let (_, ctx) = world();
    let n = 96u64;
    let state = payers(n);
    let pay = |i: u64, to: Address| {
        recovered(sender(100 + i), 0, TxKind::Call(to), U256::from(1_000 + i), Vec::new(), 21_000)
    };
    let independent: Vec<RecoveredTx> = (0..n).map(|i| pay(i, address(0x70, i))).collect();
    let dependent: Vec<RecoveredTx> = (0..n).map(|i| pay(i, address(0x70, 0))).collect();
    let exec = ParallelExecutor::new(2).min_parallel_txs(2).always_parallel().strategy(Algorithm::Split);
    for txs in [independent, dependent] {
        same_as_sequential(&exec, &state, &ctx, &txs);
    }
}

#[test]
fn deposits_to_one_address_are_credits_that_do_not_refute_each_other() {
    let (_, ctx) = world();
    let n = 96u64;
    let mut state = payers(n);
    let exchange = address(0x70, 0);
    state.insert(exchange, 3, U256::from(10u128.pow(18)), Bytes::new());
    let deposit =
        |i: u64| recovered(sender(100 + i), 0, TxKind::Call(exchange), U256::from(1_000 + i), Vec::new(), 21_000);
    let deposits: Vec<RecoveredTx> = (0..n).map(deposit).collect();
    // The exchange spends in the middle (a full read of its balance and nonce), and one
    // deposit goes to a new address.
    let mut mixed = deposits.clone();
    mixed[40] = recovered(exchange, 3, TxKind::Call(sender(7)), U256::from(4_000), Vec::new(), 21_000);
    mixed[60] = recovered(sender(160), 0, TxKind::Call(address(0x71, 1)), U256::from(9), Vec::new(), 21_000);
    let exec = ParallelExecutor::new(2).min_parallel_txs(2).always_parallel().strategy(Algorithm::Lanes);
    for (txs, all_hold) in [(deposits, true), (mixed, false)] {
        for stats in same_as_sequential(&exec, &state, &ctx, &txs) {
            assert!(!all_hold || stats.speculations_failed == 0, "{stats:?}");
        }
    }
}
