//! Traces of a block the parallel executor built are those of a sequential
//! re-execution: every re-executed transaction's gas matches the parallel run's
//! receipt, the call traces report the receipts' gas and logs, and a replay that
//! diverges from its receipts is refused rather than traced.

use alloy_consensus::transaction::SignerRecoverable;
use alloy_primitives::{Address, U256};
use alloy_rpc_types_trace::geth::{GethDebugTracingOptions, GethTrace};
use cairn_executor::trace::{geth_block_traces, TraceError};
use cairn_executor::{BlockContext, Executor, Mode, ParallelExecutor, Strategy, TxOutcome};
use cairn_primitives::{dev_accounts, ChainConfig, GenesisAlloc, InMemoryState, RecoveredTx, DEV_MNEMONIC};
use cairn_workload::{mint_call, transfer_call, Artifacts, TxFactory};

#[test]
fn traces_of_a_parallel_block_match_its_receipts() {
    let accounts = dev_accounts(DEV_MNEMONIC, 8).expect("derive");
    let mut state = InMemoryState::from_alloc(&GenesisAlloc::dev(&accounts));
    let token = Address::repeat_byte(0x7a);
    state.insert(token, 1, U256::ZERO, Artifacts::load_default().expect("artifacts").token_runtime);
    let chain = ChainConfig { fee_recipient: Address::repeat_byte(0xfe), ..Default::default() };
    let ctx = BlockContext::for_chain(&chain, 1, 1_700_000_000, 1_000_000_000, Default::default());
    let f = TxFactory::new(31337);
    let mut txs: Vec<RecoveredTx> = Vec::new();
    for (i, a) in accounts.iter().enumerate() {
        let me = a.signer.address();
        let mint = f.call(&a.signer, 0, token, mint_call(me, U256::from(1_000)), 200_000).expect("sign");
        let pay = f.call(&a.signer, 1, token, transfer_call(accounts[(i + 1) % 8].address, U256::from(7)), 200_000);
        let eth = f.transfer_eth(&a.signer, 2, Address::repeat_byte(0x33), U256::from(5));
        for tx in [mint, pay.expect("sign"), eth.expect("sign")] {
            txs.push(tx.try_into_recovered().expect("recover"));
        }
    }
    let opts: GethDebugTracingOptions =
        serde_json::from_value(serde_json::json!({"tracer": "callTracer", "tracerConfig": {"withLog": true}}))
            .expect("options");
    for strategy in [Strategy::Split, Strategy::Lanes, Strategy::BlockStm] {
        let exec = ParallelExecutor::new(2).min_parallel_txs(2).always_parallel().strategy(strategy);
        let out = exec.execute(&state, &ctx, &txs, Mode::Building).expect("parallel");
        let receipts: Vec<_> = out
            .outcomes
            .iter()
            .map(|o| match o {
                TxOutcome::Included(r) => r.clone(),
                other => panic!("not included: {other:?}"),
            })
            .collect();
        let gas: Vec<u64> = receipts.iter().map(|r| r.gas_used).collect();
        let traces = geth_block_traces(&state, &ctx, Default::default(), &txs, &gas, |_| true, &opts)
            .unwrap_or_else(|e| panic!("{strategy:?}: {e}"));
        assert_eq!(traces.len(), txs.len());
        for ((i, trace), receipt) in traces.iter().zip(&receipts) {
            let GethTrace::CallTracer(frame) = trace else { panic!("not a call trace") };
            assert_eq!(frame.gas_used, U256::from(receipt.gas_used), "{strategy:?} tx {i}");
            assert_eq!(frame.logs.len(), receipt.logs.len(), "{strategy:?} tx {i}");
            assert_eq!(frame.error.is_none(), receipt.success, "{strategy:?} tx {i}");
        }
        // One transaction traced alone: the ones before it are replayed untraced.
        let one = geth_block_traces(&state, &ctx, Default::default(), &txs, &gas, |i| i == 13, &opts).expect("one");
        assert_eq!(one.len(), 1);
        assert_eq!(one[0], traces[13]);
    }
    // A replay that does not reproduce the receipts is an error, not a trace.
    let mut wrong = vec![0u64; txs.len()];
    wrong[0] = 1;
    let err =
        geth_block_traces(&state, &ctx, Default::default(), &txs, &wrong, |i| i == 3, &opts).expect_err("diverges");
    assert!(matches!(err, TraceError::Diverged { index: 0, expected: 1, .. }), "{err}");
}
