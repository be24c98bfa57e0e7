//! The shared test contracts (`../shared/contracts`: `Token`, an ERC-20, and `Pair`, a
//! constant-product pool) and helpers that build signed transactions against them.
//! Used by tests, end-to-end tests and `cairn bench`.

use alloy_consensus::{TxEip1559, TxEip7702};
use alloy_eips::eip7702::{Authorization, SignedAuthorization};
use alloy_primitives::{Address, Bytes, TxKind, U256};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{sol, SolCall, SolValue};
use cairn_primitives::{sign_eip1559, TxEnvelope};
use std::path::{Path, PathBuf};

pub mod gigagas;
pub mod mainnet;

sol! {
    function mint(address to, uint256 value);
    function transfer(address to, uint256 value) returns (bool);
    function approve(address spender, uint256 value) returns (bool);
    function transferFrom(address from, address to, uint256 value) returns (bool);
    function balanceOf(address who) returns (uint256);
    function addLiquidity(uint256 amount0, uint256 amount1);
    function swap(bool zeroForOne, uint256 amountIn, uint256 minOut, address to) returns (uint256);
    function reserve0() returns (uint112);
    function reserve1() returns (uint112);
    event Transfer(address indexed from, address indexed to, uint256 value);
    event Sync(uint112 reserve0, uint112 reserve1);
    event Swap(address indexed sender, bool zeroForOne, uint256 amountIn, uint256 amountOut, address indexed to);
}

#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("cannot read contract artifacts at {path}: {reason}")]
    Artifacts { path: String, reason: String },
    #[error("signing failed: {0}")]
    Sign(String),
    #[error("cannot read test data: {0}")]
    Data(String),
}

/// Creation and runtime bytecode of the two test contracts.
#[derive(Debug, Clone)]
pub struct Artifacts {
    pub token_bytecode: Bytes,
    pub token_runtime: Bytes,
    pub pair_bytecode: Bytes,
    pub pair_runtime: Bytes,
}

/// `<repo>/../shared/contracts/artifacts.json`, found from this crate's manifest dir.
pub fn default_artifacts_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/contracts/artifacts.json")
}

impl Artifacts {
    pub fn load(path: &Path) -> Result<Self, WorkloadError> {
        let err = |reason: String| WorkloadError::Artifacts { path: path.display().to_string(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
        let get = |name: &str, field: &str| -> Result<Bytes, WorkloadError> {
            let hex = json["contracts"][name][field]
                .as_str()
                .ok_or_else(|| err(format!("missing contracts.{name}.{field}")))?;
            let hex = if hex.starts_with("0x") { hex.to_string() } else { format!("0x{hex}") };
            hex.parse::<Bytes>().map_err(|e| err(format!("{name}.{field}: {e}")))
        };
        Ok(Self {
            token_bytecode: get("Token", "bytecode")?,
            token_runtime: get("Token", "deployedBytecode")?,
            pair_bytecode: get("Pair", "bytecode")?,
            pair_runtime: get("Pair", "deployedBytecode")?,
        })
    }

    pub fn load_default() -> Result<Self, WorkloadError> {
        Self::load(&default_artifacts_path())
    }

    /// Creation code of `Token(name, symbol)`.
    pub fn token_deploy(&self, name: &str, symbol: &str) -> Bytes {
        let mut code = self.token_bytecode.to_vec();
        code.extend((name.to_string(), symbol.to_string()).abi_encode_params());
        code.into()
    }

    /// Creation code of `Pair(token0, token1)`.
    pub fn pair_deploy(&self, token0: Address, token1: Address) -> Bytes {
        let mut code = self.pair_bytecode.to_vec();
        code.extend((token0, token1).abi_encode_params());
        code.into()
    }
}

/// Storage slot of `balanceOf[holder]` in `Token` (mapping at slot 3).
pub fn token_balance_slot(holder: Address) -> U256 {
    let key = alloy_primitives::keccak256((holder, U256::from(3)).abi_encode());
    U256::from_be_bytes(key.0)
}

/// Storage slot of `allowance[owner][spender]` in `Token` (mapping at slot 4).
pub fn token_allowance_slot(owner: Address, spender: Address) -> U256 {
    let inner = alloy_primitives::keccak256((owner, U256::from(4)).abi_encode());
    let key = alloy_primitives::keccak256((spender, inner).abi_encode());
    U256::from_be_bytes(key.0)
}

/// Builds and signs EIP-1559 transactions for one chain with fixed fees.
#[derive(Debug, Clone, Copy)]
pub struct TxFactory {
    pub chain_id: u64,
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
}

impl TxFactory {
    pub fn new(chain_id: u64) -> Self {
        Self { chain_id, max_fee_per_gas: 10_000_000_000, max_priority_fee_per_gas: 1_000_000_000 }
    }

    pub fn sign(
        &self,
        signer: &PrivateKeySigner,
        nonce: u64,
        to: TxKind,
        value: U256,
        input: Bytes,
        gas_limit: u64,
    ) -> Result<TxEnvelope, WorkloadError> {
        let tx = TxEip1559 {
            chain_id: self.chain_id,
            nonce,
            gas_limit,
            max_fee_per_gas: self.max_fee_per_gas,
            max_priority_fee_per_gas: self.max_priority_fee_per_gas,
            to,
            value,
            access_list: Default::default(),
            input,
        };
        sign_eip1559(signer, tx).map_err(|e| WorkloadError::Sign(e.to_string()))
    }

    pub fn transfer_eth(
        &self,
        s: &PrivateKeySigner,
        nonce: u64,
        to: Address,
        value: U256,
    ) -> Result<TxEnvelope, WorkloadError> {
        self.sign(s, nonce, TxKind::Call(to), value, Bytes::new(), 21_000)
    }

    pub fn call(
        &self,
        s: &PrivateKeySigner,
        nonce: u64,
        to: Address,
        input: Vec<u8>,
        gas: u64,
    ) -> Result<TxEnvelope, WorkloadError> {
        self.sign(s, nonce, TxKind::Call(to), U256::ZERO, input.into(), gas)
    }

    pub fn create(&self, s: &PrivateKeySigner, nonce: u64, code: Bytes, gas: u64) -> Result<TxEnvelope, WorkloadError> {
        self.sign(s, nonce, TxKind::Create, U256::ZERO, code, gas)
    }

    /// An EIP-7702 (type 4) transaction from `s` to `to` carrying `authorizations`.
    pub fn set_code(
        &self,
        s: &PrivateKeySigner,
        nonce: u64,
        to: Address,
        input: Vec<u8>,
        authorizations: Vec<SignedAuthorization>,
        gas_limit: u64,
    ) -> Result<TxEnvelope, WorkloadError> {
        use alloy_consensus::SignableTransaction;
        use alloy_signer::SignerSync;
        let tx = TxEip7702 {
            chain_id: self.chain_id,
            nonce,
            gas_limit,
            max_fee_per_gas: self.max_fee_per_gas,
            max_priority_fee_per_gas: self.max_priority_fee_per_gas,
            to,
            value: U256::ZERO,
            access_list: Default::default(),
            authorization_list: authorizations,
            input: input.into(),
        };
        let sig = s.sign_hash_sync(&tx.signature_hash()).map_err(|e| WorkloadError::Sign(e.to_string()))?;
        Ok(TxEnvelope::Eip7702(tx.into_signed(sig)))
    }
}

/// An EIP-7702 authorization by `authority`: delegate its code to `address` (the zero
/// address clears a delegation), valid on `chain_id` (0: any chain) at account nonce
/// `nonce`.
pub fn authorize(
    authority: &PrivateKeySigner,
    chain_id: u64,
    address: Address,
    nonce: u64,
) -> Result<SignedAuthorization, WorkloadError> {
    use alloy_signer::SignerSync;
    let auth = Authorization { chain_id: U256::from(chain_id), address, nonce };
    let sig = authority.sign_hash_sync(&auth.signature_hash()).map_err(|e| WorkloadError::Sign(e.to_string()))?;
    Ok(auth.into_signed(sig))
}

/// Calldata helpers.
pub fn mint_call(to: Address, value: U256) -> Vec<u8> {
    mintCall { to, value }.abi_encode()
}
pub fn transfer_call(to: Address, value: U256) -> Vec<u8> {
    transferCall { to, value }.abi_encode()
}
pub fn transfer_from_call(from: Address, to: Address, value: U256) -> Vec<u8> {
    transferFromCall { from, to, value }.abi_encode()
}
pub fn approve_call(spender: Address, value: U256) -> Vec<u8> {
    approveCall { spender, value }.abi_encode()
}
pub fn balance_of_call(who: Address) -> Vec<u8> {
    balanceOfCall { who }.abi_encode()
}
pub fn add_liquidity_call(amount0: U256, amount1: U256) -> Vec<u8> {
    addLiquidityCall { amount0, amount1 }.abi_encode()
}
pub fn swap_call(zero_for_one: bool, amount_in: U256, min_out: U256, to: Address) -> Vec<u8> {
    swapCall { zeroForOne: zero_for_one, amountIn: amount_in, minOut: min_out, to }.abi_encode()
}
pub fn reserve0_call() -> Vec<u8> {
    reserve0Call {}.abi_encode()
}

/// Deterministic private keys for benchmark senders (index 1..).
pub fn bench_signer(index: u64) -> PrivateKeySigner {
    let mut key = [0u8; 32];
    key[0] = 0x42;
    key[24..].copy_from_slice(&(index + 1).to_be_bytes());
    PrivateKeySigner::from_slice(&key).expect("a 32-byte non-zero key below the curve order is valid")
}

/// Runtime code of a probe of the block-start system writes (hand-assembled), for
/// tests: called with no data in block `n`, it logs 160 bytes: `n − 1`, what the EIP-2935
/// history contract answers for `n − 1`, `BLOCKHASH(n − 1)`, the block's timestamp, and
/// 1 if the EIP-4788 contract answers for that timestamp (0 if it reverts).
pub fn system_probe_code() -> Bytes {
    let mut code = Vec::new();
    // mem[0x00] = n - 1
    code.extend_from_slice(&[0x60, 0x01, 0x43, 0x03, 0x5f, 0x52]);
    // staticcall(gas, HISTORY, 0x00, 0x20, 0x20, 0x20); pop the flag
    code.extend_from_slice(&[0x60, 0x20, 0x60, 0x20, 0x60, 0x20, 0x5f, 0x73]);
    code.extend_from_slice(cairn_primitives::predeploys::HISTORY_STORAGE.as_slice());
    code.extend_from_slice(&[0x5a, 0xfa, 0x50]);
    // mem[0x40] = BLOCKHASH(n - 1)
    code.extend_from_slice(&[0x60, 0x01, 0x43, 0x03, 0x40, 0x60, 0x40, 0x52]);
    // mem[0x60] = TIMESTAMP
    code.extend_from_slice(&[0x42, 0x60, 0x60, 0x52]);
    // mem[0x80] = staticcall(gas, BEACON_ROOTS, 0x60, 0x20, 0x80, 0x20)
    code.extend_from_slice(&[0x60, 0x20, 0x60, 0x80, 0x60, 0x20, 0x60, 0x60, 0x73]);
    code.extend_from_slice(cairn_primitives::predeploys::BEACON_ROOTS.as_slice());
    code.extend_from_slice(&[0x5a, 0xfa, 0x60, 0x80, 0x52]);
    // log0(0x00, 0xa0); stop
    code.extend_from_slice(&[0x60, 0xa0, 0x5f, 0xa0, 0x00]);
    code.into()
}
