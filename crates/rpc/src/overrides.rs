//! State and block overrides of `eth_call` / `eth_estimateGas` (and `eth_simulateV1`,
//! `debug_traceCall`), as geth applies them: per account `balance`, `nonce`, `code`,
//! and either `state` (the whole storage replaced: unlisted slots read zero) or
//! `stateDiff` (the listed slots changed, the rest kept); per block `number`, `time`,
//! `gasLimit`, `feeRecipient`/`coinbase`, `prevRandao`/`random`, `baseFeePerGas`,
//! `difficulty` and `blockHash` (what `BLOCKHASH` returns). What Cairn does not support
//! (`movePrecompileToAddress`, `blobBaseFee`, `beaconRoot`, unknown fields) is refused
//! with a clear error, never ignored.

use alloy_primitives::map::{AddressHashMap, HashMap};
use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use alloy_rpc_types_eth::state::StateOverride;
use alloy_rpc_types_eth::BlockOverrides;
use cairn_executor::BlockContext;
use cairn_primitives::{AccountState, StateError, StateView};
use std::collections::BTreeMap;

use crate::RpcError;

#[derive(Debug, Clone)]
enum Storage {
    /// `state`: the account's whole storage.
    Replace(HashMap<U256, U256>),
    /// `stateDiff`: these slots over the account's own.
    Diff(HashMap<U256, U256>),
}

#[derive(Debug, Clone, Default)]
struct Patch {
    balance: Option<U256>,
    nonce: Option<u64>,
    code_hash: Option<B256>,
    storage: Option<Storage>,
}

/// A state with overrides on top of another.
pub struct Overridden<'a> {
    base: &'a dyn StateView,
    accounts: AddressHashMap<Patch>,
    code: HashMap<B256, Bytes>,
    block_hashes: BTreeMap<u64, B256>,
}

fn slots(map: &alloy_primitives::map::B256HashMap<B256>) -> HashMap<U256, U256> {
    map.iter().map(|(k, v)| (U256::from_be_bytes(k.0), U256::from_be_bytes(v.0))).collect()
}

impl<'a> Overridden<'a> {
    /// `base` with `state` and the block-hash overrides applied; refuses what it cannot
    /// apply faithfully.
    pub fn new(
        base: &'a dyn StateView,
        state: Option<&StateOverride>,
        block_hashes: BTreeMap<u64, B256>,
    ) -> Result<Self, RpcError> {
        let mut accounts = AddressHashMap::default();
        let mut code = HashMap::default();
        for (address, o) in state.into_iter().flatten() {
            if o.move_precompile_to.is_some() {
                return Err(RpcError::InvalidParams(format!(
                    "account {address}: movePrecompileToAddress is not supported"
                )));
            }
            let storage = match (&o.state, &o.state_diff) {
                (Some(_), Some(_)) => {
                    return Err(RpcError::InvalidParams(format!("account {address} has both 'state' and 'stateDiff'")))
                }
                (Some(s), None) => Some(Storage::Replace(slots(s))),
                (None, Some(d)) => Some(Storage::Diff(slots(d))),
                (None, None) => None,
            };
            let code_hash = o.code.as_ref().map(|c| {
                let hash = keccak256(c);
                code.insert(hash, c.clone());
                hash
            });
            accounts.insert(*address, Patch { balance: o.balance, nonce: o.nonce, code_hash, storage });
        }
        Ok(Self { base, accounts, code, block_hashes })
    }
}

impl StateView for Overridden<'_> {
    fn account(&self, address: Address) -> Result<Option<AccountState>, StateError> {
        let base = self.base.account(address)?;
        let Some(p) = self.accounts.get(&address) else { return Ok(base) };
        let mut acc = base.unwrap_or_default();
        if let Some(b) = p.balance {
            acc.balance = b;
        }
        if let Some(n) = p.nonce {
            acc.nonce = n;
        }
        if let Some(h) = p.code_hash {
            acc.code_hash =
                if self.code.get(&h).is_some_and(|c| c.is_empty()) { alloy_primitives::KECCAK256_EMPTY } else { h };
        }
        Ok(Some(acc))
    }

    fn storage(&self, address: Address, slot: U256) -> Result<U256, StateError> {
        match self.accounts.get(&address).and_then(|p| p.storage.as_ref()) {
            Some(Storage::Replace(map)) => Ok(map.get(&slot).copied().unwrap_or_default()),
            Some(Storage::Diff(map)) => match map.get(&slot) {
                Some(v) => Ok(*v),
                None => self.base.storage(address, slot),
            },
            None => self.base.storage(address, slot),
        }
    }

    fn code(&self, code_hash: B256) -> Result<Bytes, StateError> {
        match self.code.get(&code_hash) {
            Some(c) => Ok(c.clone()),
            None => self.base.code(code_hash),
        }
    }

    fn block_hash(&self, number: u64) -> Result<B256, StateError> {
        match self.block_hashes.get(&number) {
            Some(h) => Ok(*h),
            None => self.base.block_hash(number),
        }
    }
}

/// Fields of a block override object Cairn applies.
const BLOCK_FIELDS: [&str; 12] = [
    "number",
    "blockNumber",
    "difficulty",
    "time",
    "gasLimit",
    "coinbase",
    "feeRecipient",
    "random",
    "prevRandao",
    "baseFee",
    "baseFeePerGas",
    "blockHash",
];

/// Parses a block override object, refusing fields Cairn does not apply.
pub fn parse_block_overrides(value: serde_json::Value) -> Result<BlockOverrides, RpcError> {
    if let Some(map) = value.as_object() {
        if let Some(k) = map.keys().find(|k| !BLOCK_FIELDS.contains(&k.as_str())) {
            return Err(RpcError::InvalidParams(format!(
                "block override '{k}' is not supported (supported: {})",
                BLOCK_FIELDS.join(", ")
            )));
        }
    }
    serde_json::from_value(value).map_err(|e| RpcError::InvalidParams(format!("invalid block overrides: {e}")))
}

/// Applies `o` to `ctx`; returns the `BLOCKHASH` overrides.
pub fn apply_block_overrides(ctx: &mut BlockContext, o: &BlockOverrides) -> Result<BTreeMap<u64, B256>, RpcError> {
    let too_big = |what: &str| RpcError::InvalidParams(format!("block override {what} does not fit in 64 bits"));
    if let Some(n) = o.number {
        ctx.number = n.try_into().map_err(|_| too_big("number"))?;
    }
    if let Some(d) = o.difficulty {
        ctx.difficulty = d;
    }
    if let Some(t) = o.time {
        ctx.timestamp = t;
    }
    if let Some(g) = o.gas_limit {
        ctx.gas_limit = g;
    }
    if let Some(c) = o.coinbase {
        ctx.beneficiary = c;
    }
    if let Some(r) = o.random {
        ctx.prevrandao = r;
    }
    if let Some(b) = o.base_fee {
        ctx.base_fee = b.try_into().map_err(|_| too_big("baseFeePerGas"))?;
    }
    if o.blob_base_fee.is_some() || o.beacon_root.is_some() {
        return Err(RpcError::InvalidParams("blobBaseFee and beaconRoot overrides are not supported".into()));
    }
    Ok(o.block_hash.clone().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_rpc_types_eth::state::AccountOverride;
    use cairn_primitives::InMemoryState;

    fn base() -> InMemoryState {
        let mut s = InMemoryState::default();
        s.insert(Address::repeat_byte(1), 5, U256::from(100), Bytes::from_static(&[0x00]));
        let slots = s.storage.entry(Address::repeat_byte(1)).or_default();
        slots.insert(U256::from(1), U256::from(11));
        slots.insert(U256::from(2), U256::from(22));
        s
    }

    fn one(address: Address, o: AccountOverride) -> StateOverride {
        let mut m = StateOverride::default();
        m.insert(address, o);
        m
    }

    fn slot_map(pairs: &[(u64, u64)]) -> alloy_primitives::map::B256HashMap<B256> {
        pairs.iter().map(|(k, v)| (B256::from(U256::from(*k)), B256::from(U256::from(*v)))).collect()
    }

    #[test]
    fn fields_state_and_state_diff_apply_as_geth_does() {
        let s = base();
        let a = Address::repeat_byte(1);
        let o = AccountOverride {
            balance: Some(U256::from(7)),
            code: Some(Bytes::from_static(&[0x60, 0x00])),
            state_diff: Some(slot_map(&[(2, 99)])),
            ..Default::default()
        };
        let view = Overridden::new(&s, Some(&one(a, o)), BTreeMap::new()).expect("valid");
        let acc = view.account(a).expect("read").expect("exists");
        assert_eq!((acc.balance, acc.nonce), (U256::from(7), 5), "nonce kept");
        assert_eq!(view.code(acc.code_hash).expect("code"), Bytes::from_static(&[0x60, 0x00]));
        assert_eq!(view.storage(a, U256::from(1)).expect("slot"), U256::from(11), "stateDiff keeps the rest");
        assert_eq!(view.storage(a, U256::from(2)).expect("slot"), U256::from(99));

        let o = AccountOverride { state: Some(slot_map(&[(2, 5)])), nonce: Some(9), ..Default::default() };
        let view = Overridden::new(&s, Some(&one(a, o)), BTreeMap::new()).expect("valid");
        assert_eq!(view.storage(a, U256::from(1)).expect("slot"), U256::ZERO, "state replaces the whole storage");
        assert_eq!(view.storage(a, U256::from(2)).expect("slot"), U256::from(5));
        assert_eq!(view.account(a).expect("read").expect("exists").nonce, 9);

        // A new account comes into being; empty code means no code.
        let fresh = Address::repeat_byte(2);
        let o = AccountOverride { code: Some(Bytes::new()), balance: Some(U256::from(1)), ..Default::default() };
        let view = Overridden::new(&s, Some(&one(fresh, o)), BTreeMap::from([(3, B256::repeat_byte(3))])).expect("ok");
        let acc = view.account(fresh).expect("read").expect("created");
        assert_eq!(acc.code_hash, alloy_primitives::KECCAK256_EMPTY);
        assert_eq!(view.block_hash(3).expect("hash"), B256::repeat_byte(3));
    }

    #[test]
    fn what_cannot_be_applied_is_refused() {
        let s = base();
        let a = Address::repeat_byte(1);
        let both = AccountOverride {
            state: Some(slot_map(&[(1, 1)])),
            state_diff: Some(slot_map(&[(1, 1)])),
            ..Default::default()
        };
        let err = Overridden::new(&s, Some(&one(a, both)), BTreeMap::new()).err().expect("refused");
        assert!(err.to_string().contains("has both 'state' and 'stateDiff'"), "{err}");
        let moved = AccountOverride { move_precompile_to: Some(Address::ZERO), ..Default::default() };
        assert!(Overridden::new(&s, Some(&one(a, moved)), BTreeMap::new()).is_err());
        let err = parse_block_overrides(serde_json::json!({"time": "0x5", "withdrawals": []})).expect_err("unknown");
        assert!(err.to_string().contains("'withdrawals' is not supported"), "{err}");
        let o = parse_block_overrides(serde_json::json!({"number": "0x10", "baseFeePerGas": "0x7"})).expect("ok");
        let mut ctx = BlockContext::for_chain(&Default::default(), 1, 1, 1, B256::ZERO);
        apply_block_overrides(&mut ctx, &o).expect("applies");
        assert_eq!((ctx.number, ctx.base_fee), (16, 7));
    }
}
