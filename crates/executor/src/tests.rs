use super::*;
use alloy_consensus::transaction::SignerRecoverable;
use alloy_primitives::{Address, U256};
use cairn_primitives::{dev_accounts, GenesisAlloc, InMemoryState, StateView, DEV_MNEMONIC};
use cairn_workload::{Artifacts, TxFactory};

fn setup() -> (Vec<alloy_signer_local::PrivateKeySigner>, InMemoryState, BlockContext) {
    let accounts = dev_accounts(DEV_MNEMONIC, 3).expect("derive");
    let state = InMemoryState::from_alloc(&GenesisAlloc::dev(&accounts));
    let chain = cairn_primitives::ChainConfig { fee_recipient: Address::repeat_byte(0xfe), ..Default::default() };
    let block = BlockContext::for_chain(&chain, 1, 1_700_000_000, 1_000_000_000, B256::ZERO);
    (accounts.into_iter().map(|a| a.signer).collect(), state, block)
}

fn recover(tx: cairn_primitives::TxEnvelope) -> RecoveredTx {
    tx.try_into_recovered().expect("recover")
}

#[test]
fn eth_transfer_moves_value_and_pays_fees() {
    let (signers, state, block) = setup();
    let f = TxFactory::new(block.chain_id);
    let to = Address::repeat_byte(0x11);
    let tx = recover(f.transfer_eth(&signers[0], 0, to, U256::from(1000)).expect("sign"));
    let out = SequentialExecutor.execute(&state, &block, &[tx], Mode::Replay).expect("execute");
    assert_eq!(out.gas_used, 21_000);
    let TxOutcome::Included(r) = &out.outcomes[0] else { panic!("not included: {:?}", out.outcomes) };
    assert!(r.success);
    assert_eq!(r.effective_gas_price, 2_000_000_000, "base fee 1 gwei + tip 1 gwei");
    let mut after = state.clone();
    after.apply(&out.diff);
    assert_eq!(after.account(to).expect("read").map(|a| a.balance), Some(U256::from(1000)));
    let tip = U256::from(21_000u64 * 1_000_000_000);
    assert_eq!(after.account(block.beneficiary).expect("read").map(|a| a.balance), Some(tip));
    let sender = after.account(signers[0].address()).expect("read").expect("sender");
    assert_eq!(sender.nonce, 1);
}

#[test]
fn building_mode_skips_invalid_and_replay_mode_rejects_them() {
    let (signers, state, block) = setup();
    let f = TxFactory::new(block.chain_id);
    let good = recover(f.transfer_eth(&signers[0], 0, Address::repeat_byte(1), U256::from(1)).expect("sign"));
    let gap = recover(f.transfer_eth(&signers[1], 5, Address::repeat_byte(1), U256::from(1)).expect("sign"));
    let replayed = good.clone();
    let txs = vec![good, gap, replayed];
    let out = SequentialExecutor.execute(&state, &block, &txs, Mode::Building).expect("execute");
    assert!(matches!(out.outcomes[0], TxOutcome::Included(_)));
    assert!(matches!(out.outcomes[1], TxOutcome::Skipped(Skip::Later(_))), "{:?}", out.outcomes[1]);
    assert!(matches!(out.outcomes[2], TxOutcome::Skipped(Skip::Invalid(_))), "{:?}", out.outcomes[2]);
    let err = SequentialExecutor.execute(&state, &block, &txs, Mode::Replay).expect_err("must fail");
    assert!(matches!(err, ExecError::InvalidTx { index: 1, .. }), "{err}");
}

#[test]
fn token_deploy_mint_transfer_emits_logs_and_simulates() {
    let (signers, mut state, block) = setup();
    let art = Artifacts::load_default().expect("artifacts");
    let f = TxFactory::new(block.chain_id);
    let me = signers[0].address();
    let token = me.create(0);
    let txs = vec![
        recover(f.create(&signers[0], 0, art.token_deploy("A", "A"), 2_000_000).expect("sign")),
        recover(f.call(&signers[0], 1, token, cairn_workload::mint_call(me, U256::from(500)), 100_000).expect("sign")),
        recover(
            f.call(
                &signers[0],
                2,
                token,
                cairn_workload::transfer_call(signers[1].address(), U256::from(200)),
                100_000,
            )
            .expect("sign"),
        ),
        // transfer more than the balance: reverts, still included
        recover(
            f.call(&signers[1], 0, token, cairn_workload::transfer_call(me, U256::from(10_000)), 100_000)
                .expect("sign"),
        ),
    ];
    let out = SequentialExecutor.execute(&state, &block, &txs, Mode::Replay).expect("execute");
    let receipts: Vec<_> = out
        .outcomes
        .iter()
        .map(|o| match o {
            TxOutcome::Included(r) => r.clone(),
            other => panic!("skipped: {other:?}"),
        })
        .collect();
    assert_eq!(receipts[0].created(), Some(token));
    assert!(receipts[1].success && receipts[2].success && !receipts[3].success);
    assert_eq!(receipts[2].logs.len(), 1);
    assert_eq!(receipts[2].logs[0].address, token);
    assert_eq!(out.gas_used, receipts[3].cumulative_gas_used);
    state.apply(&out.diff);
    let slot = cairn_workload::token_balance_slot(signers[1].address());
    assert_eq!(state.storage(token, slot).expect("slot"), U256::from(200));

    // eth_call semantics: read the balance, and see a revert with its reason
    let req = CallRequest { to: Some(token), input: cairn_workload::balance_of_call(me).into(), ..Default::default() };
    let CallOutcome::Success { output, .. } = call(&state, &block, &req, 50_000_000).expect("call") else {
        panic!("balanceOf failed")
    };
    assert_eq!(U256::from_be_slice(&output), U256::from(300));
    let bad = CallRequest {
        from: Some(signers[2].address()),
        to: Some(token),
        input: cairn_workload::transfer_call(me, U256::from(1)).into(),
        ..Default::default()
    };
    assert!(matches!(call(&state, &block, &bad, 50_000_000).expect("call"), CallOutcome::Revert { .. }));
    let transfer = CallRequest { from: Some(me), ..bad.clone() };
    let estimate = estimate_gas(&state, &block, &transfer, 50_000_000).expect("estimate").expect("succeeds");
    let at_estimate = CallRequest { gas: Some(estimate), ..transfer.clone() };
    assert!(matches!(call(&state, &block, &at_estimate, 50_000_000).expect("call"), CallOutcome::Success { .. }));
    let starved = CallRequest { gas: Some(estimate * 9 / 10), ..transfer };
    assert!(!matches!(call(&state, &block, &starved, 50_000_000).expect("call"), CallOutcome::Success { .. }));
}

#[test]
fn intrinsic_gas_matches_the_yellow_paper() {
    let (signers, _, block) = setup();
    let f = TxFactory::new(block.chain_id);
    let plain = f.transfer_eth(&signers[0], 0, Address::ZERO, U256::ZERO).expect("sign");
    assert_eq!(intrinsic_gas(&plain, signers[0].address(), block.spec), 21_000);
    let data = f.call(&signers[0], 0, Address::ZERO, vec![1, 0], 100_000).expect("sign");
    // Prague: max(21000 + 16 + 4, 21000 + 10 * (4 + 1)) = 21050
    assert_eq!(intrinsic_gas(&data, signers[0].address(), block.spec), 21_050);
}

/// A block executed in pieces (`execute_from` with the offsets the earlier pieces left,
/// on the state they left; how fragments are built) equals the block executed whole:
/// receipts (cumulative gas, log indexes), gas and the combined diff — sequential and
/// parallel, with the fee recipient's balance changing in every piece.
#[test]
fn a_block_executed_in_pieces_equals_the_whole() {
    let (signers, mut state, block) = setup();
    let art = Artifacts::load_default().expect("artifacts");
    let f = TxFactory::new(block.chain_id);
    let me = signers[0].address();
    let token = me.create(0);
    let deploy = vec![
        recover(f.create(&signers[0], 0, art.token_deploy("T", "T"), 2_000_000).expect("sign")),
        recover(
            f.call(&signers[0], 1, token, cairn_workload::mint_call(me, U256::from(1_000_000)), 100_000).expect("sign"),
        ),
    ];
    let out = SequentialExecutor.execute(&state, &block, &deploy, Mode::Replay).expect("deploy");
    state.apply(&out.diff);
    let mut next = [2u64, 0, 0];
    let mut txs = Vec::new();
    for n in 0..24u64 {
        let to = Address::with_last_byte(n as u8 + 1);
        let s = if n % 3 == 0 { 1 + (n as usize / 3) % 2 } else { 0 };
        let nonce = next[s];
        next[s] += 1;
        let tx = if s == 0 {
            f.call(&signers[0], nonce, token, cairn_workload::transfer_call(to, U256::from(n)), 100_000).expect("sign")
        } else {
            f.transfer_eth(&signers[s], nonce, to, U256::from(5)).expect("sign")
        };
        txs.push(recover(tx));
    }
    let parallel = ParallelExecutor::new(2).always_parallel().min_parallel_txs(2);
    let executors: [&dyn Executor; 2] = [&SequentialExecutor, &parallel];
    for exec in executors {
        let whole = exec.execute(&state, &block, &txs, Mode::Building).expect("whole");
        let mut at = Offsets::default();
        let mut outcomes = Vec::new();
        let mut diff = cairn_primitives::StateDiff::default();
        for piece in txs.chunks(7) {
            let view = parallel::overlay::Overlay::new(&state, &diff);
            let part = exec.execute_from(&view, &block, piece, Mode::Building, at).expect("piece");
            at.index += piece.len();
            at.gas = part.gas_used;
            at.logs += part
                .outcomes
                .iter()
                .map(|o| if let TxOutcome::Included(r) = o { r.logs.len() as u64 } else { 0 })
                .sum::<u64>();
            outcomes.extend(part.outcomes);
            diff.extend(part.diff);
        }
        assert_eq!(outcomes, whole.outcomes);
        assert_eq!(at.gas, whole.gas_used);
        assert_eq!(diff, whole.diff);
        assert!(outcomes.iter().all(|o| matches!(o, TxOutcome::Included(_))));
        // The committer's hint: the sender's balance slot, written in every piece, had
        // its minted value before the block; the recipients' slots had none.
        let token_change = &whole.diff.accounts[&token];
        let mine = cairn_workload::token_balance_slot(me);
        assert_eq!(token_change.original.get(&mine), Some(&U256::from(1_000_000)));
        assert_ne!(token_change.storage.get(&mine), Some(&U256::from(1_000_000)));
        assert_eq!(token_change.original.len(), 1, "only the slot that held a value: {:?}", token_change.original);
    }
}
