//! The 62 historical Ethereum mainnet blocks of `../shared/data/mainnet-blocks`
//! (Frontier to Cancun) through Cairn's executors, each with the rules of its era:
//! `gasUsed` must equal the header's, and from Byzantium on (when receipts carry a
//! status instead of a state root) so must `receiptsRoot` and `logsBloom`. The
//! pre-state holds only the touched accounts, so the state root cannot be checked.
//! The parallel executor must return exactly the sequential output (receipts, gas,
//! state diff) with Block-STM at 1, 2, 4 and 8 threads and with the two lanes, several
//! runs each to shake out races.

use alloy_consensus::proofs::calculate_receipt_root;
use alloy_primitives::Bloom;
use cairn_executor::{BlockOutput, Executor, Mode, ParallelExecutor, SequentialExecutor, SpecId, Strategy, TxOutcome};
use cairn_workload::mainnet::{block_dirs, default_dir, load, MainnetBlock};

fn check_against_header(block: &MainnetBlock, out: &BlockOutput, failures: &mut Vec<String>) -> bool {
    if out.gas_used != block.header.gas_used {
        failures.push(format!("block {}: gas used {} != header {}", block.number, out.gas_used, block.header.gas_used));
    }
    if block.context().spec < SpecId::BYZANTIUM {
        return false;
    }
    let receipts: Vec<_> = out
        .outcomes
        .iter()
        .filter_map(|o| match o {
            TxOutcome::Included(r) => Some(r.envelope()),
            TxOutcome::Skipped(_) => None,
        })
        .collect();
    let root = calculate_receipt_root(&receipts);
    if root != block.header.receipts_root {
        failures.push(format!("block {}: receipts root {root} != header {}", block.number, block.header.receipts_root));
    }
    let mut bloom = Bloom::ZERO;
    for r in &receipts {
        bloom.accrue_bloom(r.logs_bloom());
    }
    if bloom != block.header.logs_bloom {
        failures.push(format!("block {}: logs bloom differs", block.number));
    }
    true
}

#[test]
fn mainnet_blocks_match_their_headers_sequential_and_parallel() {
    let dirs = block_dirs(&default_dir()).expect("../shared/data/mainnet-blocks");
    assert_eq!(dirs.len(), 62, "the README promises 62 blocks");
    let mut failures = Vec::new();
    let mut receipts_checked = 0;
    let mut parallel_runs = 0;
    let mut reexecutions = 0;
    for dir in &dirs {
        let block = load(dir).expect("load block");
        let ctx = block.context();
        let sequential = match SequentialExecutor.execute(&block.state, &ctx, &block.txs, Mode::Replay) {
            Ok(out) => out,
            Err(e) => {
                failures.push(format!("block {}: {e}", block.number));
                continue;
            }
        };
        if check_against_header(&block, &sequential, &mut failures) {
            receipts_checked += 1;
        }
        for (threads, strategy) in [
            (1, Strategy::BlockStm),
            (2, Strategy::Lanes),
            (2, Strategy::Split),
            (2, Strategy::BlockStm),
            (4, Strategy::BlockStm),
            (8, Strategy::BlockStm),
        ] {
            // Every block through the parallel path, however small.
            let parallel = ParallelExecutor::new(threads).min_parallel_txs(2).always_parallel().strategy(strategy);
            for run in 0..3 {
                match parallel.execute_with_stats(&block.state, &ctx, &block.txs, Mode::Replay, Default::default()) {
                    Ok((out, stats)) if out == sequential => {
                        let expect_parallel = threads > 1 && block.txs.len() >= 2;
                        if expect_parallel && (stats.fallbacks > 0 || stats.parallel_txs != block.txs.len()) {
                            failures.push(format!(
                                "block {} at {threads} threads ({strategy:?}): not executed in parallel ({stats:?})",
                                block.number
                            ));
                        }
                        reexecutions += stats.executions.saturating_sub(stats.parallel_txs);
                        if std::env::var("DBG").is_ok() {
                            eprintln!("{} {} txs t{threads}: {:?}", block.number, block.txs.len(), stats);
                        }
                    }
                    Ok((out, _)) => {
                        let first = out.outcomes.iter().zip(&sequential.outcomes).position(|(a, b)| a != b);
                        failures.push(format!(
                            "block {} at {threads} threads ({strategy:?}, run {run}): parallel differs from sequential \
                             (first differing outcome {first:?}, gas {} vs {}, diff equal: {})",
                            block.number,
                            out.gas_used,
                            sequential.gas_used,
                            out.diff == sequential.diff
                        ));
                    }
                    Err(e) => failures.push(format!("block {} at {threads} threads ({strategy:?}): {e}", block.number)),
                }
                parallel_runs += 1;
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    assert!(receipts_checked >= 45, "only {receipts_checked} post-Byzantium blocks checked");
    assert_eq!(parallel_runs, 62 * 6 * 3);
    eprintln!("parallel runs: {parallel_runs}, re-executions: {reexecutions}");
}
