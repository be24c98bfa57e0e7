//! End to end with viem 2.57.1 (npm, pinned in tools/): the README's example against the
//! real binary — send, wait for the receipt, read balances and blocks, estimate fees,
//! watch heads over WebSocket, and see a stale nonce rejected; then preconfirmations:
//! a fragment verified with viem's `verifyTypedData` knowing only the sequencer's
//! address, the `cairn_fragments` stream, `eth_sendRawTransactionSync` (EIP-7966)
//! through viem's own action, and the status tiers; `multicall` through the predeployed
//! Multicall3 and `simulateContract`.

mod common;

use common::Node;
use std::path::Path;
use std::process::Command;

#[test]
fn viem_sends_waits_and_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/viem-e2e.mjs");
    let viem = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/node_modules/viem");
    assert!(viem.exists(), "viem is missing: run the test command from the README (it installs it from npm)");
    let out = Command::new("node").arg(&script).arg(node.http()).output().expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "viem script failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json line");
    assert_eq!(result["status"], "success");
    assert_eq!(result["gasUsed"], "21000");
    assert_eq!(result["delta"], "1000000000000000000");
    assert_eq!(result["blockHasTx"], true);
    assert!(result["maxFeePerGas"].as_str().expect("fee").parse::<u128>().expect("number") > 0);
    assert!(result["rejected"].as_str().expect("message").contains("nonce too low"), "{result}");
    assert!(result["headsSeen"].as_u64().expect("count") >= 1, "{result}");
    // preconfirmations, checked by viem's EIP-712 implementation
    assert_eq!(result["preconfVerified"], true, "{result}");
    assert_eq!(result["preconfHashMatches"], true, "{result}");
    assert_eq!(result["preconfTamperedRejected"], true, "{result}");
    assert_eq!(result["preconfInFragment"], true, "{result}");
    assert_eq!(result["streamedHasTx"], true, "{result}");
    assert_eq!(result["syncStatus"], "success", "{result}");
    assert_eq!(result["syncBlockHasTx"], true, "{result}");
    let tiers: Vec<&str> =
        result["statusHistory"].as_array().expect("history").iter().filter_map(|t| t.as_str()).collect();
    assert_eq!(&tiers[..2], ["received", "preconfirmed"], "{result}");
    // multicall through the predeployed Multicall3, and simulateContract
    assert_eq!(result["multicallChainId"], "31337", "{result}");
    assert_eq!(result["multicallBalanceMatches"], true, "{result}");
    assert_eq!(result["multicallFailureReported"], true, "{result}");
    assert_eq!(result["simulatedChainId"], "31337", "{result}");
}
