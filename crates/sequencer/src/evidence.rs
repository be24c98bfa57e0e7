//! Equivocation evidence: two fragments one key signed that cannot both hold. Checked by
//! [`cairn_primitives::fragment::find_equivocation`] (pure) before it is kept; kept in
//! the store (at most [`cairn_storage::MAX_EVIDENCE`] records), so it survives restarts.
//! The record keeps the two signed fragments as published (EIP-712 typed data signed
//! with secp256k1), the form an EVM contract can check.

use alloy_primitives::{keccak256, B256};
use cairn_primitives::fragment::{find_equivocation, Equivocation};
use cairn_primitives::SignedFragment;
use serde::{Deserialize, Serialize};

use crate::chain::Chain;
use crate::error::SequencerError;

/// What the store keeps of one piece of evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceRecord {
    /// The two fragments, the earlier position first.
    pub fragments: [SignedFragment; 2],
    /// Milliseconds since the Unix epoch when this node first recorded it.
    pub recorded_ms: u64,
}

/// The id of the evidence two fragments make: keccak256 of their hashes, lower first.
pub fn evidence_id(e: &Equivocation) -> B256 {
    let (a, b) = if e.first <= e.second { (e.first, e.second) } else { (e.second, e.first) };
    keccak256([a.as_slice(), b.as_slice()].concat())
}

impl Chain {
    /// Checks that `a` and `b` prove their signer equivocated on this chain and keeps
    /// them; returns the proof and its id. Recording the same evidence again keeps the
    /// first record.
    pub fn record_evidence(
        &self,
        a: SignedFragment,
        b: SignedFragment,
    ) -> Result<(B256, Equivocation), SequencerError> {
        let invalid = |m: String| SequencerError::Invalid(m);
        let proof = find_equivocation(&a, &b)
            .map_err(|e| invalid(format!("not evidence: {e}")))?
            .ok_or_else(|| invalid("not evidence: the two fragments are consistent".into()))?;
        if proof.chain_id != self.config.chain_id {
            return Err(invalid(format!(
                "not evidence for this chain: the fragments are for chain {}, this is chain {}",
                proof.chain_id, self.config.chain_id
            )));
        }
        let id = evidence_id(&proof);
        let reader = self.store.reader()?;
        if reader.evidence().map(|all| all.iter().any(|(k, _)| *k == id))? {
            return Ok((id, proof));
        }
        if reader.evidence_count()? >= cairn_storage::MAX_EVIDENCE {
            return Err(invalid(format!("the evidence store is full ({} records)", cairn_storage::MAX_EVIDENCE)));
        }
        let fragments = if a.fragment.hash() == proof.first { [a, b] } else { [b, a] };
        let record = EvidenceRecord { fragments, recorded_ms: crate::fragments::now_ms() };
        let bytes = serde_json::to_vec(&record).map_err(|e| invalid(e.to_string()))?;
        let mut w = self.store.writer()?;
        w.put_evidence(id, &bytes)?;
        w.commit()?;
        tracing::warn!(signer = %proof.signer, conflict = ?proof.conflict, %id, "equivocation evidence recorded");
        Ok((id, proof))
    }

    /// Every evidence record kept, each checked again as it is read.
    pub fn evidence(&self) -> Result<Vec<(B256, Equivocation, EvidenceRecord)>, SequencerError> {
        let mut out = Vec::new();
        for (id, bytes) in self.store.reader()?.evidence()? {
            let corrupt =
                |reason: String| SequencerError::Store(cairn_storage::StoreError::Corrupt { what: "evidence", reason });
            let record: EvidenceRecord = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
            let [a, b] = &record.fragments;
            let proof = find_equivocation(a, b)
                .map_err(|e| corrupt(e.to_string()))?
                .ok_or_else(|| corrupt(format!("record {id} no longer proves anything")))?;
            out.push((id, proof, record));
        }
        Ok(out)
    }
}
