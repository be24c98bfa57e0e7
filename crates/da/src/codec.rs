//! The batch codec: decided sequencer blocks with their certificates and their raw
//! transactions grouped by namespace, compressed, versioned, with one commitment per
//! namespace so that a rollup can check its part.
//!
//! Layout: [`MAGIC`] ‖ version (1 byte) ‖ RLP [`BatchHeader`] ‖ zstd(RLP list of
//! [`BatchBlock`]). The header names the heights, the keccak256 of the compressed payload,
//! and for each namespace the Merkle root ([`crate::merkle`]) over its transactions in
//! batch order, each leaf `keccak256(0x00 ‖ height ‖ position ‖ keccak256(raw))` (height
//! and position as 8-byte big-endian; position within the namespace's part of the
//! block). Decoding checks every one of these and is bounded ([`MAX_BATCH_BYTES`],
//! [`MAX_PAYLOAD_BYTES`]). Pure.

use std::collections::BTreeMap;

use alloy_primitives::{keccak256, Bytes, B256};
use alloy_rlp::{Decodable, Encodable, RlpDecodable, RlpEncodable};
use cairn_primitives::SequencerBlock;

use crate::merkle::{self, Proof};
use crate::DaError;

/// The first bytes of every batch.
pub const MAGIC: &[u8; 7] = b"CAIRNDA";
/// The batch format this node writes and reads.
pub const VERSION: u8 = 1;
/// Largest batch accepted (compressed, with its header).
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// Largest payload once decompressed.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024 * 1024;
/// zstd level batches are written at.
const LEVEL: i32 = 3;

/// One namespace's transactions of a block, in order.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct NamespaceTxs {
    /// The rollup's chain id.
    pub namespace: u64,
    pub txs: Vec<Bytes>,
}

/// A decided sequencer block as a batch carries it.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct BatchBlock {
    /// The sequencer block's RLP encoding.
    pub sequencer: Bytes,
    /// What decided it, encoded by the consensus crate (opaque here).
    pub certificate: Bytes,
    /// Its transactions by namespace; their concatenation is the block's transaction
    /// list.
    pub groups: Vec<NamespaceTxs>,
}

/// A namespace's commitment in a batch.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable, RlpDecodable, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceCommitment {
    pub namespace: u64,
    /// How many of its transactions the batch holds.
    pub txs: u64,
    pub root: B256,
}

/// What a batch says about itself, readable without decompressing it.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable, RlpDecodable, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchHeader {
    pub first_height: u64,
    pub last_height: u64,
    /// keccak256 of the compressed payload.
    pub payload_hash: B256,
    /// One per namespace present, in namespace order.
    pub namespaces: Vec<NamespaceCommitment>,
}

/// Decided blocks, consecutive, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub blocks: Vec<BatchBlock>,
}

/// The leaf of the transaction `raw` at `position` of its namespace in block `height`.
pub fn tx_leaf(height: u64, position: u64, raw: &[u8]) -> B256 {
    let mut data = Vec::with_capacity(48);
    data.extend_from_slice(&height.to_be_bytes());
    data.extend_from_slice(&position.to_be_bytes());
    data.extend_from_slice(keccak256(raw).as_slice());
    merkle::leaf(&data)
}

impl BatchBlock {
    /// The block with its transactions grouped by namespace (`namespace_of` each raw
    /// transaction, in block order: a namespace's transactions keep their order).
    pub fn new(
        block: &SequencerBlock,
        certificate: Bytes,
        txs: &[Bytes],
        namespace_of: impl Fn(&Bytes) -> u64,
    ) -> Self {
        let mut groups: Vec<NamespaceTxs> = Vec::new();
        for raw in txs {
            let ns = namespace_of(raw);
            match groups.iter_mut().find(|g| g.namespace == ns) {
                Some(g) => g.txs.push(raw.clone()),
                None => groups.push(NamespaceTxs { namespace: ns, txs: vec![raw.clone()] }),
            }
        }
        Self { sequencer: block.encode().into(), certificate, groups }
    }

    pub fn block(&self) -> Result<SequencerBlock, DaError> {
        SequencerBlock::decode(&self.sequencer).map_err(|e| DaError::Malformed(format!("sequencer block: {e}")))
    }
}

impl Batch {
    /// The leaves of each namespace, in batch order.
    fn leaves(&self) -> Result<BTreeMap<u64, Vec<B256>>, DaError> {
        let mut out: BTreeMap<u64, Vec<B256>> = BTreeMap::new();
        for b in &self.blocks {
            let height = b.block()?.height;
            for g in &b.groups {
                let leaves = out.entry(g.namespace).or_default();
                leaves.extend(g.txs.iter().enumerate().map(|(i, raw)| tx_leaf(height, i as u64, raw)));
            }
        }
        Ok(out)
    }

    /// Checks that the blocks are consecutive and that each block's groups hold exactly
    /// its transactions; returns the first and last heights.
    fn check(&self) -> Result<(u64, u64), DaError> {
        let mut heights = Vec::with_capacity(self.blocks.len());
        for b in &self.blocks {
            let block = b.block()?;
            let hashes: Vec<B256> = b.groups.iter().flat_map(|g| g.txs.iter().map(keccak256)).collect();
            if hashes.len() != block.transactions.len() {
                return Err(DaError::Malformed(format!(
                    "block {} names {} transactions, the batch carries {}",
                    block.height,
                    block.transactions.len(),
                    hashes.len()
                )));
            }
            // Grouping keeps each namespace's order; the block's order interleaves them.
            let mut named = block.transactions.clone();
            let mut carried = hashes;
            named.sort();
            carried.sort();
            if named != carried {
                return Err(DaError::Malformed(format!(
                    "block {}'s transactions are not the ones named",
                    block.height
                )));
            }
            if let Some(prev) = heights.last() {
                if block.height != prev + 1 {
                    return Err(DaError::Malformed(format!("block {} follows block {prev}", block.height)));
                }
            }
            heights.push(block.height);
        }
        match (heights.first(), heights.last()) {
            (Some(first), Some(last)) => Ok((*first, *last)),
            _ => Err(DaError::Malformed("a batch holds at least one block".into())),
        }
    }

    /// The header of this batch for a compressed payload hashing to `payload_hash`.
    fn header(&self, payload_hash: B256) -> Result<BatchHeader, DaError> {
        let (first_height, last_height) = self.check()?;
        let namespaces = self
            .leaves()?
            .into_iter()
            .map(|(namespace, leaves)| NamespaceCommitment {
                namespace,
                txs: leaves.len() as u64,
                root: merkle::root(&leaves),
            })
            .collect();
        Ok(BatchHeader { first_height, last_height, payload_hash, namespaces })
    }

    /// The batch's bytes.
    pub fn encode(&self) -> Result<Vec<u8>, DaError> {
        let mut payload = Vec::new();
        self.blocks.encode(&mut payload);
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(DaError::TooLarge { size: payload.len(), limit: MAX_PAYLOAD_BYTES });
        }
        let compressed = zstd::bulk::compress(&payload, LEVEL).map_err(|e| DaError::Malformed(e.to_string()))?;
        let header = self.header(keccak256(&compressed))?;
        let mut out = Vec::with_capacity(MAGIC.len() + 1 + 256 + compressed.len());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        header.encode(&mut out);
        out.extend_from_slice(&compressed);
        if out.len() > MAX_BATCH_BYTES {
            return Err(DaError::TooLarge { size: out.len(), limit: MAX_BATCH_BYTES });
        }
        Ok(out)
    }

    /// A batch's header, checked for magic and version only (the payload is not read),
    /// and where the payload starts.
    pub fn read_header(bytes: &[u8]) -> Result<(BatchHeader, usize), DaError> {
        if bytes.len() > MAX_BATCH_BYTES {
            return Err(DaError::TooLarge { size: bytes.len(), limit: MAX_BATCH_BYTES });
        }
        let rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or(DaError::Malformed("not a Cairn batch".into()))?;
        let (&version, mut rest) = rest.split_first().ok_or(DaError::Malformed("no version".into()))?;
        if version != VERSION {
            return Err(DaError::Version { found: version, supported: VERSION });
        }
        let before = rest.len();
        let header = BatchHeader::decode(&mut rest).map_err(|e| DaError::Malformed(format!("header: {e}")))?;
        Ok((header, MAGIC.len() + 1 + (before - rest.len())))
    }

    /// Decodes and checks a batch: its payload hash, its blocks and every namespace
    /// commitment.
    pub fn decode(bytes: &[u8]) -> Result<(BatchHeader, Batch), DaError> {
        let (header, start) = Self::read_header(bytes)?;
        let compressed = &bytes[start..];
        if keccak256(compressed) != header.payload_hash {
            return Err(DaError::Malformed("the payload does not hash to the header's payload hash".into()));
        }
        let payload = zstd::bulk::decompress(compressed, MAX_PAYLOAD_BYTES)
            .map_err(|e| DaError::Malformed(format!("payload: {e}")))?;
        let blocks = Vec::<BatchBlock>::decode(&mut payload.as_slice())
            .map_err(|e| DaError::Malformed(format!("blocks: {e}")))?;
        let batch = Batch { blocks };
        let expected = batch.header(header.payload_hash)?;
        if expected != header {
            return Err(DaError::Malformed(
                "the header's heights or namespace commitments are not the payload's".into(),
            ));
        }
        Ok((header, batch))
    }

    /// The proof that `namespace`'s transaction at `position` of block `height` is in
    /// this batch: the raw transaction and its Merkle proof against the namespace's
    /// root.
    pub fn prove(&self, namespace: u64, height: u64, position: u64) -> Result<Option<(Bytes, Proof)>, DaError> {
        let mut index = 0usize;
        let mut found = None;
        for b in &self.blocks {
            let h = b.block()?.height;
            for g in b.groups.iter().filter(|g| g.namespace == namespace) {
                if h == height {
                    found = g.txs.get(position as usize).map(|raw| (raw.clone(), index + position as usize));
                }
                index += g.txs.len();
            }
        }
        let Some((raw, at)) = found else { return Ok(None) };
        let leaves = self.leaves()?.remove(&namespace).unwrap_or_default();
        Ok(merkle::prove(&leaves, at).map(|p| (raw, p)))
    }
}

/// Whether `raw` is `namespace`'s transaction at `position` of block `height` in the
/// batch whose header is `header`.
pub fn verify_inclusion(
    header: &BatchHeader,
    namespace: u64,
    height: u64,
    position: u64,
    raw: &[u8],
    proof: &Proof,
) -> bool {
    header
        .namespaces
        .iter()
        .find(|n| n.namespace == namespace)
        .is_some_and(|n| n.txs == proof.leaves && merkle::verify(&n.root, &tx_leaf(height, position, raw), proof))
}
