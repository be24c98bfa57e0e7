//! `cairn preconf verify`: judge signed fragments — do two of them prove equivocation,
//! did a sealed block break one's promise.
//!
//! Inputs are JSON files: a signed fragment as Cairn publishes it (`cairn_fragments`,
//! `cairn_sendRawTransactionPreconfirmed`), a block as `eth_getBlockByNumber` returns it,
//! or one file holding a pair (`{"a": fragment, "b": fragment}` or
//! `{"fragment": ..., "block": ...}`), or one evidence record as `cairn_getEvidence`
//! serves it (two fragments, a double vote or a double proposal). Prints the verdict
//! and evidence as JSON.
//! Exit status: 0 no misbehaviour, 3 misbehaviour proven, 1 the input cannot be judged.

use anyhow::{anyhow, bail, Context};
use cairn_primitives::fragment::{check_promise, find_equivocation, SealedBlock};
use cairn_primitives::{Address, SignedFragment, B256};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum PreconfCommand {
    /// Decide whether two signed fragments prove equivocation, or whether a sealed block
    /// broke a fragment's promise. Exit status 0: no misbehaviour; 3: proven (the
    /// evidence is printed); 1: the input cannot be judged.
    Verify(VerifyArgs),
}

#[derive(Args)]
pub struct VerifyArgs {
    /// One file with a pair, or two files (fragment and fragment, or fragment and block).
    #[arg(required = true, num_args = 1..=2)]
    pub files: Vec<PathBuf>,
    /// Require fragments signed by this sequencer address.
    #[arg(long, value_name = "ADDRESS")]
    pub sequencer: Option<Address>,
}

/// Exit status when misbehaviour is proven.
pub const PROVEN: i32 = 3;

pub fn run(cmd: PreconfCommand) -> anyhow::Result<i32> {
    let PreconfCommand::Verify(args) = cmd;
    let mut docs = Vec::new();
    for path in &args.files {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let value: Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        docs.push(value);
    }
    let (first, second) = match docs.len() {
        1 => {
            let doc = docs.remove(0);
            let pair = doc.get("fragments").and_then(Value::as_array).filter(|f| f.len() == 2);
            match (doc.get("a"), doc.get("b"), doc.get("fragment"), doc.get("block")) {
                (Some(a), Some(b), _, _) => (a.clone(), b.clone()),
                (_, _, Some(f), Some(b)) => (f.clone(), b.clone()),
                _ if pair.is_some() => pair.map(|p| (p[0].clone(), p[1].clone())).unwrap_or_default(),
                _ if doc.get("votes").is_some() || doc.get("proposals").is_some() => {
                    let (verdict, proven) = judge_consensus(&doc, args.sequencer)?;
                    println!("{}", serde_json::to_string_pretty(&verdict)?);
                    return Ok(if proven { PROVEN } else { 0 });
                }
                _ => bail!(
                    "a single file must hold {{\"a\", \"b\"}}, {{\"fragment\", \"block\"}}, or an evidence record (cairn_getEvidence)"
                ),
            }
        }
        _ => {
            let b = docs.remove(1);
            (docs.remove(0), b)
        }
    };
    let (verdict, proven) = judge(&first, &second, args.sequencer)?;
    println!("{}", serde_json::to_string_pretty(&verdict)?);
    Ok(if proven { PROVEN } else { 0 })
}

/// The verdict on two documents, and whether misbehaviour is proven.
pub fn judge(first: &Value, second: &Value, sequencer: Option<Address>) -> anyhow::Result<(Value, bool)> {
    let is_fragment = |v: &Value| v.get("signature").is_some();
    match (is_fragment(first), is_fragment(second)) {
        (true, true) => {
            let (a, b) = (fragment(first)?, fragment(second)?);
            a.verify(sequencer)?;
            b.verify(sequencer)?;
            Ok(match find_equivocation(&a, &b)? {
                Some(evidence) => (json!({ "verdict": "equivocation", "evidence": evidence }), true),
                None => (json!({ "verdict": "consistent", "signer": a.signer()? }), false),
            })
        }
        (true, false) | (false, true) => {
            let (f, b) = if is_fragment(first) { (first, second) } else { (second, first) };
            let f = fragment(f)?;
            f.verify(sequencer)?;
            let block = sealed_block(b)?;
            Ok(match check_promise(&f, &block)? {
                Some(evidence) => (json!({ "verdict": "brokenPromise", "evidence": evidence }), true),
                None => (json!({ "verdict": "promiseKept", "signer": f.signer()?, "block": block.number }), false),
            })
        }
        (false, false) => bail!("neither input is a signed fragment (no \"signature\")"),
    }
}

/// The verdict on a double vote or double proposal (`cairn_getEvidence`'s form): the
/// signer is recovered from the two signatures, never read from the record.
pub fn judge_consensus(doc: &Value, sequencer: Option<Address>) -> anyhow::Result<(Value, bool)> {
    let evidence: cairn_consensus::ConsensusEvidence =
        serde_json::from_value(doc.clone()).context("not a double vote or double proposal")?;
    match evidence.check() {
        Ok(proof) => {
            if let Some(expected) = sequencer.filter(|s| *s != proof.signer) {
                bail!("the messages are signed by {}, not by {expected}", proof.signer);
            }
            let id = proof.id();
            let mut evidence = serde_json::to_value(&proof)?;
            evidence["id"] = json!(id);
            Ok((json!({ "verdict": "equivocation", "evidence": evidence }), true))
        }
        Err(reason) => Ok((json!({ "verdict": "notEvidence", "reason": reason }), false)),
    }
}

/// A signed fragment; a `hash` given with it must be its EIP-712 hash.
fn fragment(v: &Value) -> anyhow::Result<SignedFragment> {
    let f: SignedFragment = serde_json::from_value(v.clone()).context("not a signed fragment")?;
    if let Some(given) = v.get("hash") {
        let given: B256 = serde_json::from_value(given.clone()).context("fragment hash")?;
        let actual = f.fragment.hash();
        if given != actual {
            bail!("the fragment's fields hash to {actual}, not to the hash {given} it carries: it was altered");
        }
    }
    Ok(f)
}

fn quantity(v: &Value, key: &str) -> anyhow::Result<u64> {
    let field = v.get(key).ok_or_else(|| anyhow!("the block has no {key}"))?;
    match field {
        Value::Number(n) => n.as_u64().ok_or_else(|| anyhow!("{key} is not a quantity")),
        Value::String(s) => u64::from_str_radix(s.trim_start_matches("0x"), 16).with_context(|| format!("{key}: {s}")),
        _ => bail!("{key} is not a quantity"),
    }
}

/// A block as `eth_getBlockByNumber` returns it (transaction hashes or objects).
fn sealed_block(v: &Value) -> anyhow::Result<SealedBlock> {
    let txs =
        v.get("transactions").and_then(Value::as_array).ok_or_else(|| anyhow!("the block has no transactions list"))?;
    let transactions = txs
        .iter()
        .map(|t| {
            let h = if t.is_object() { t.get("hash").cloned().unwrap_or(Value::Null) } else { t.clone() };
            serde_json::from_value::<B256>(h).context("transaction hash")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(SealedBlock {
        number: quantity(v, "number")?,
        timestamp: quantity(v, "timestamp")?,
        base_fee: quantity(v, "baseFeePerGas")?,
        gas_used: quantity(v, "gasUsed")?,
        transactions,
        receipts: None,
    })
}
