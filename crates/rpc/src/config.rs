//! `eth_config` (EIP-7910): the rules the chain runs now — its chain id, the fork id
//! (EIP-6122: every fork is active from genesis, so the fork hash is the CRC-32 of the
//! genesis hash), the blob schedule, the precompiles by name. Cairn makes no
//! block-start system calls, so it lists no system contracts; no fork is scheduled, so
//! `next` and `last` are `null`.

use alloy_primitives::{Address, U64};
use cairn_primitives::Hardfork;
use serde_json::{json, Map, Value};

use crate::eth::EthApi;
use crate::RpcError;

fn precompile(n: u8) -> Address {
    Address::with_last_byte(n)
}

impl EthApi {
    pub fn config(&self) -> Result<Value, RpcError> {
        let reader = self.chain.store.reader()?;
        let genesis = reader.header(0)?.ok_or_else(|| RpcError::Internal("genesis header missing".into()))?;
        let fork_hash = crc32fast::hash(genesis.hash_slow().as_slice()).to_be_bytes();
        let mut precompiles: Vec<(&str, u8)> = vec![
            ("ECREC", 1),
            ("SHA256", 2),
            ("RIPEMD160", 3),
            ("ID", 4),
            ("MODEXP", 5),
            ("BN254_ADD", 6),
            ("BN254_MUL", 7),
            ("BN254_PAIRING", 8),
            ("BLAKE2F", 9),
            ("KZG_POINT_EVALUATION", 10),
        ];
        let blob_schedule = match self.chain.config.hardfork {
            Hardfork::Cancun => json!({"baseFeeUpdateFraction": 3_338_477, "max": 6, "target": 3}),
            Hardfork::Prague => {
                precompiles.extend([
                    ("BLS12_G1ADD", 11),
                    ("BLS12_G1MSM", 12),
                    ("BLS12_G2ADD", 13),
                    ("BLS12_G2MSM", 14),
                    ("BLS12_PAIRING_CHECK", 15),
                    ("BLS12_MAP_FP_TO_G1", 16),
                    ("BLS12_MAP_FP2_TO_G2", 17),
                ]);
                json!({"baseFeeUpdateFraction": 5_007_716, "max": 9, "target": 6})
            }
        };
        let precompiles: Map<String, Value> =
            precompiles.into_iter().map(|(name, n)| (name.to_string(), json!(precompile(n)))).collect();
        Ok(json!({
            "current": {
                "activationTime": genesis.timestamp,
                "blobSchedule": blob_schedule,
                "chainId": U64::from(self.chain.config.chain_id),
                "forkId": format!("0x{}", alloy_primitives::hex::encode(fork_hash)),
                "precompiles": precompiles,
                "systemContracts": {},
            },
            "next": null,
            "last": null,
        }))
    }
}
