//! Evidence of misbehaviour, kept in the store (at most [`cairn_storage::MAX_EVIDENCE`]
//! records, so it survives restarts) and served over RPC:
//!
//! - two fragments one key signed that cannot both hold, checked by
//!   [`cairn_primitives::fragment::find_equivocation`];
//! - a double vote or a double proposal of a validator, checked by
//!   [`ConsensusEvidence::check`].
//!
//! Every record keeps the signed messages as published (EIP-712 typed data signed with
//! secp256k1), the form an EVM contract can check, and is checked (pure) before it is
//! kept and again as it is read. A node of a validator set keeps evidence only against
//! the set's validators, and hands each new record to its evidence hook (the node
//! gossips it to the other validators).

use alloy_primitives::{Address, B256};
use cairn_consensus::{pair_id, ConsensusEvidence, ConsensusProof};
use cairn_primitives::fragment::{find_equivocation, Equivocation};
use cairn_primitives::SignedFragment;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::chain::Chain;
use crate::error::SequencerError;

/// What the store keeps of one piece of evidence: one of `fragments` or `consensus`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceRecord {
    /// Two fragments, the earlier position first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fragments: Option<[SignedFragment; 2]>,
    /// A double vote or double proposal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consensus: Option<ConsensusEvidence>,
    /// Milliseconds since the Unix epoch when this node first recorded it.
    pub recorded_ms: u64,
}

/// Signed messages offered as evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    Fragments(Box<[SignedFragment; 2]>),
    Consensus(ConsensusEvidence),
}

/// What a piece of evidence proves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Proven {
    Fragments(Equivocation),
    Consensus(ConsensusProof),
}

impl Proven {
    pub fn signer(&self) -> Address {
        match self {
            Self::Fragments(e) => e.signer,
            Self::Consensus(p) => p.signer,
        }
    }

    pub fn chain_id(&self) -> u64 {
        match self {
            Self::Fragments(e) => e.chain_id,
            Self::Consensus(p) => p.chain_id,
        }
    }

    /// The evidence's id: keccak256 of the two signed messages' hashes, lower first.
    pub fn id(&self) -> B256 {
        match self {
            Self::Fragments(e) => pair_id(e.first, e.second),
            Self::Consensus(p) => p.id(),
        }
    }
}

/// The id of the evidence two fragments make: keccak256 of their hashes, lower first.
pub fn evidence_id(e: &Equivocation) -> B256 {
    pair_id(e.first, e.second)
}

impl Evidence {
    /// Checks what the messages prove (their signatures, their conflict).
    pub fn prove(&self) -> Result<Proven, String> {
        match self {
            Self::Fragments(pair) => {
                let [a, b] = pair.as_ref();
                find_equivocation(a, b)
                    .map_err(|e| e.to_string())?
                    .map(Proven::Fragments)
                    .ok_or_else(|| "the two fragments are consistent".into())
            }
            Self::Consensus(e) => e.check().map(Proven::Consensus),
        }
    }

    /// Evidence in the JSON form `cairn_getEvidence` serves (and `cairn_submitEvidence`
    /// takes): an object with `fragments` (two signed fragments), or a consensus
    /// conflict (`conflict`: `doubleVote` with `votes`, `doubleProposal` with
    /// `proposals`).
    pub fn from_json(v: &Value) -> Result<Self, String> {
        if let Some(fragments) = v.get("fragments") {
            let pair: [SignedFragment; 2] =
                serde_json::from_value(fragments.clone()).map_err(|e| format!("fragments: {e}"))?;
            return Ok(Self::Fragments(Box::new(pair)));
        }
        let e: ConsensusEvidence = serde_json::from_value(v.clone())
            .map_err(|e| format!("neither two fragments nor a double vote or double proposal ({e})"))?;
        Ok(Self::Consensus(e))
    }
}

impl EvidenceRecord {
    fn evidence(&self) -> Result<Evidence, String> {
        match (&self.fragments, &self.consensus) {
            (Some(f), None) => Ok(Evidence::Fragments(Box::new(f.clone()))),
            (None, Some(c)) => Ok(Evidence::Consensus(c.clone())),
            _ => Err("a record holds either two fragments or consensus evidence".into()),
        }
    }

    /// The record as `cairn_getEvidence` serves it: what it proves, its `id`, the
    /// signed messages and `recordedAt`.
    pub fn to_json(&self, id: B256, proof: &Proven) -> Value {
        let mut v = serde_json::to_value(proof).unwrap_or_default();
        if let Some(fragments) = &self.fragments {
            v["fragments"] = json!(fragments);
        }
        if let Some(Value::Object(fields)) = self.consensus.as_ref().map(|c| json!(c)) {
            for (k, field) in fields {
                v[k] = field;
            }
        }
        v["id"] = json!(id);
        v["recordedAt"] = json!(self.recorded_ms);
        v
    }
}

/// Where evidence records are kept: a rollup's store, or a shared set's order store.
pub(crate) trait EvidenceStore {
    fn stored(&self) -> Result<Vec<(B256, Vec<u8>)>, SequencerError>;
    fn count(&self) -> Result<u64, SequencerError>;
    fn put(&self, id: B256, bytes: &[u8]) -> Result<(), SequencerError>;
}

impl EvidenceStore for Chain {
    fn stored(&self) -> Result<Vec<(B256, Vec<u8>)>, SequencerError> {
        Ok(self.store.reader()?.evidence()?)
    }

    fn count(&self) -> Result<u64, SequencerError> {
        Ok(self.store.reader()?.evidence_count()?)
    }

    fn put(&self, id: B256, bytes: &[u8]) -> Result<(), SequencerError> {
        let mut w = self.store.writer()?;
        w.put_evidence(id, bytes)?;
        w.commit()?;
        Ok(())
    }
}

impl EvidenceStore for cairn_storage::order::OrderStore {
    fn stored(&self) -> Result<Vec<(B256, Vec<u8>)>, SequencerError> {
        Ok(self.evidence()?)
    }

    fn count(&self) -> Result<u64, SequencerError> {
        Ok(self.evidence_count()?)
    }

    fn put(&self, id: B256, bytes: &[u8]) -> Result<(), SequencerError> {
        Ok(self.put_evidence(id, bytes)?)
    }
}

/// Checks that `evidence` proves its signer misbehaved on chain `chain_id` (and, when
/// `gate` knows the accountable keys, that the signer is one) and keeps it in `store`.
/// Returns the id, the proof, and whether it is new; recording the same evidence again
/// keeps the first record. A new record goes to the gate's hook.
pub(crate) fn record_in(
    store: &dyn EvidenceStore,
    gate: &parking_lot::Mutex<crate::chain::EvidenceGate>,
    chain_id: u64,
    evidence: Evidence,
) -> Result<(B256, Proven, bool), SequencerError> {
    let invalid = |m: String| SequencerError::Invalid(m);
    let proof = evidence.prove().map_err(|e| invalid(format!("not evidence: {e}")))?;
    if proof.chain_id() != chain_id {
        return Err(invalid(format!(
            "not evidence for this chain: it is for chain {}, this is chain {chain_id}",
            proof.chain_id()
        )));
    }
    let signer = proof.signer();
    if gate.lock().accountable.as_ref().is_some_and(|keys| !keys.contains(&signer)) {
        return Err(invalid(format!("not evidence against this chain's validators: {signer} is not one")));
    }
    let id = proof.id();
    if store.stored()?.iter().any(|(k, _)| *k == id) {
        return Ok((id, proof, false));
    }
    if store.count()? >= cairn_storage::MAX_EVIDENCE {
        return Err(invalid(format!("the evidence store is full ({} records)", cairn_storage::MAX_EVIDENCE)));
    }
    let mut record = EvidenceRecord { fragments: None, consensus: None, recorded_ms: crate::fragments::now_ms() };
    match evidence {
        Evidence::Fragments(pair) => {
            let [a, b] = *pair;
            let first = matches!(&proof, Proven::Fragments(e) if a.fragment.hash() == e.first);
            record.fragments = Some(if first { [a, b] } else { [b, a] });
        }
        Evidence::Consensus(c) => record.consensus = Some(c),
    }
    let bytes = serde_json::to_vec(&record).map_err(|e| invalid(e.to_string()))?;
    store.put(id, &bytes)?;
    tracing::warn!(%signer, %id, "misbehaviour evidence recorded");
    if let Some(hook) = gate.lock().hook.as_ref() {
        hook(record.to_json(id, &proof));
    }
    Ok((id, proof, true))
}

/// Every evidence record in `store`, each checked again as it is read.
pub(crate) fn read_all(store: &dyn EvidenceStore) -> Result<Vec<(B256, Proven, EvidenceRecord)>, SequencerError> {
    let mut out = Vec::new();
    for (id, bytes) in store.stored()? {
        let corrupt =
            |reason: String| SequencerError::Store(cairn_storage::StoreError::Corrupt { what: "evidence", reason });
        let record: EvidenceRecord = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        let proof = record
            .evidence()
            .and_then(|e| e.prove())
            .map_err(|e| corrupt(format!("record {id} no longer proves anything: {e}")))?;
        out.push((id, proof, record));
    }
    Ok(out)
}

impl Chain {
    /// Checks that `evidence` proves its signer misbehaved on this chain (and, when the
    /// chain knows its accountable keys, that the signer is one) and keeps it. Returns
    /// the id, the proof, and whether it is new; recording the same evidence again keeps
    /// the first record. A new record goes to the evidence hook.
    pub fn record_evidence(&self, evidence: Evidence) -> Result<(B256, Proven, bool), SequencerError> {
        record_in(self, &self.evidence_gate, self.config.chain_id, evidence)
    }

    /// Every evidence record kept, each checked again as it is read.
    pub fn evidence(&self) -> Result<Vec<(B256, Proven, EvidenceRecord)>, SequencerError> {
        read_all(self)
    }

    /// Keeps evidence only against these keys (a validator set's); `None` keeps
    /// evidence against any key.
    pub fn set_accountable(&self, keys: Option<std::collections::HashSet<Address>>) {
        self.evidence_gate.lock().accountable = keys;
    }

    /// Sets what receives each new evidence record (in its `cairn_getEvidence` form).
    pub fn set_evidence_hook(&self, hook: Option<crate::chain::EvidenceHook>) {
        self.evidence_gate.lock().hook = hook;
    }
}
