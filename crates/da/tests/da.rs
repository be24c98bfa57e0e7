//! The batch codec and the local DA store: batches round-trip and check everything they
//! claim (payload hash, consecutive heights, each block's transactions, one commitment
//! per namespace); each namespace's transactions prove against its commitment alone;
//! tampered, foreign or future-version bytes are refused; the local store keeps batches
//! across a reopen and goes on with no gap and no duplicate.

use alloy_primitives::{keccak256, Address, Bytes, B256};
use cairn_da::{codec, verify_inclusion, Batch, BatchBlock, DaBackend, DaError, LocalDa};
use cairn_primitives::SequencerBlock;

/// A raw "transaction" of `namespace` (the codec does not decode transactions; the first
/// byte says which namespace a test put it in).
fn raw(namespace: u64, n: u64) -> Bytes {
    let mut b = vec![namespace as u8];
    b.extend_from_slice(&n.to_be_bytes());
    b.extend(std::iter::repeat_n(0xab, 100));
    Bytes::from(b)
}

fn block(height: u64, txs: &[Bytes]) -> BatchBlock {
    let block = SequencerBlock {
        chain_id: 31337,
        height,
        round: 0,
        parent: B256::repeat_byte(height as u8),
        proposer: Address::repeat_byte(1),
        timestamp: 1_700_000_000 + height,
        base_fee: 7,
        gas_limit: 30_000_000,
        prevrandao: B256::ZERO,
        beneficiary: Address::ZERO,
        transactions: txs.iter().map(keccak256).collect(),
        fragments: Vec::new(),
        executed: None,
        namespaces: None,
    };
    BatchBlock::new(&block, Bytes::from_static(b"certificate"), txs, |raw| u64::from(raw[0]))
}

/// Blocks `from..from + count`, each with interleaved transactions of namespaces 1 and 2.
fn batch(from: u64, count: u64) -> Batch {
    let blocks = (from..from + count)
        .map(|h| {
            let txs: Vec<Bytes> = (0..6).map(|i| raw(1 + (i % 2), h * 100 + i)).collect();
            block(h, &txs)
        })
        .collect();
    Batch { blocks }
}

#[test]
fn a_batch_round_trips_and_each_namespace_proves_its_transactions() {
    let b = batch(10, 4);
    let bytes = b.encode().expect("encode");
    let (header, decoded) = Batch::decode(&bytes).expect("decode");
    assert_eq!(decoded, b);
    assert_eq!((header.first_height, header.last_height), (10, 13));
    assert_eq!(header.namespaces.iter().map(|n| (n.namespace, n.txs)).collect::<Vec<_>>(), vec![(1, 12), (2, 12)]);
    // Compressed: 24 transactions of ~110 bytes, mostly repeated bytes.
    assert!(bytes.len() < 24 * 110 / 2, "{} bytes", bytes.len());
    // The header alone is readable without the payload.
    let (alone, _) = Batch::read_header(&bytes).expect("header");
    assert_eq!(alone, header);
    for ns in [1u64, 2] {
        for h in 10..14 {
            for pos in 0..3 {
                let (tx, proof) = decoded.prove(ns, h, pos).expect("prove").expect("present");
                assert_eq!(tx[0] as u64, ns);
                assert!(verify_inclusion(&header, ns, h, pos, &tx, &proof), "ns {ns} block {h} position {pos}");
                // Not at another place, not in another namespace, not another transaction.
                assert!(!verify_inclusion(&header, ns, h, pos + 1, &tx, &proof));
                assert!(!verify_inclusion(&header, 3 - ns, h, pos, &tx, &proof));
                assert!(!verify_inclusion(&header, ns, h, pos, &raw(ns, 999), &proof));
            }
        }
        assert_eq!(decoded.prove(ns, 10, 3).expect("prove"), None, "3 transactions per namespace per block");
    }
    assert_eq!(decoded.prove(7, 10, 0).expect("prove"), None, "no such namespace");
}

#[test]
fn tampered_foreign_and_future_batches_are_refused() {
    let bytes = batch(1, 2).encode().expect("encode");
    // A flipped payload byte: the payload hash no longer matches.
    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert!(matches!(Batch::decode(&flipped), Err(DaError::Malformed(m)) if m.contains("payload")));
    // Another version.
    let mut future = bytes.clone();
    future[codec::MAGIC.len()] = codec::VERSION + 1;
    assert_eq!(
        Batch::decode(&future).expect_err("version"),
        DaError::Version { found: codec::VERSION + 1, supported: codec::VERSION }
    );
    // Not a batch at all; truncated.
    assert!(matches!(Batch::decode(b"hello"), Err(DaError::Malformed(_))));
    assert!(Batch::decode(&bytes[..bytes.len() / 2]).is_err());
    // Too large to be read.
    let huge = vec![0u8; codec::MAX_BATCH_BYTES + 1];
    assert!(matches!(Batch::decode(&huge), Err(DaError::TooLarge { .. })));
}

#[test]
fn a_batch_must_hold_consecutive_blocks_with_exactly_their_transactions() {
    let mut gap = batch(1, 3);
    gap.blocks.remove(1);
    assert!(matches!(gap.encode(), Err(DaError::Malformed(m)) if m.contains("follows")));
    let mut missing = batch(1, 1);
    missing.blocks[0].groups[0].txs.pop();
    assert!(matches!(missing.encode(), Err(DaError::Malformed(m)) if m.contains("names")));
    let mut swapped = batch(1, 1);
    swapped.blocks[0].groups[0].txs[0] = raw(1, 12345);
    assert!(matches!(swapped.encode(), Err(DaError::Malformed(m)) if m.contains("not the ones named")));
    assert!(matches!(Batch { blocks: Vec::new() }.encode(), Err(DaError::Malformed(_))));
}

#[test]
fn the_local_store_keeps_batches_across_a_reopen_with_no_gap_and_no_duplicate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let posted: Vec<Vec<u8>> = (0..3).map(|i| batch(1 + i * 2, 2).encode().expect("encode")).collect();
    {
        let da = LocalDa::open(dir.path()).expect("open");
        assert_eq!(da.latest().expect("latest"), None);
        for (i, bytes) in posted.iter().enumerate() {
            let r = da.post(bytes).expect("post");
            assert_eq!((r.height, r.commitment, r.backend.as_str()), (i as u64 + 1, keccak256(bytes), "local"));
        }
    }
    // An interrupted write leaves a temporary file: it is not a batch.
    std::fs::write(dir.path().join("batch-000000000004.bin.tmp"), b"torn").expect("write");
    let da = LocalDa::open(dir.path()).expect("reopen");
    let latest = da.latest().expect("latest").expect("some");
    assert_eq!((latest.height, latest.commitment), (3, keccak256(&posted[2])));
    for (i, bytes) in posted.iter().enumerate() {
        assert_eq!(da.fetch(i as u64 + 1).expect("fetch").as_ref(), Some(bytes));
    }
    assert_eq!(da.fetch(4).expect("fetch"), None);
    // The next batch follows the last one read back: its first block is the one after.
    let (header, _) = Batch::decode(&da.fetch(latest.height).expect("fetch").expect("some")).expect("decode");
    let next = batch(header.last_height + 1, 1).encode().expect("encode");
    assert_eq!(da.post(&next).expect("post").height, 4);
    assert!(!dir.path().join("batch-000000000004.bin.tmp").exists());
}
