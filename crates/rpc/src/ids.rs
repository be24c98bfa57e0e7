//! Ids handed to clients (subscriptions, filters).

/// Subscription ids as geth makes them: `0x` and 32 hex digits (clients such as viem
/// expect a string), unpredictable across restarts.
#[derive(Debug)]
pub struct HexIdProvider {
    seed: [u8; 32],
    counter: std::sync::atomic::AtomicU64,
}

impl HexIdProvider {
    pub fn new() -> Self {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let seed = alloy_primitives::keccak256(
            [now.as_nanos().to_be_bytes(), u128::from(std::process::id()).to_be_bytes()].concat(),
        );
        Self { seed: seed.0, counter: std::sync::atomic::AtomicU64::new(0) }
    }
}

impl Default for HexIdProvider {
    fn default() -> Self {
        Self::new()
    }
}

impl jsonrpsee::core::traits::IdProvider for HexIdProvider {
    fn next_id(&self) -> jsonrpsee::types::SubscriptionId<'static> {
        let n = self.counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = alloy_primitives::keccak256([self.seed.as_slice(), &n.to_be_bytes()].concat());
        jsonrpsee::types::SubscriptionId::Str(format!("0x{}", alloy_primitives::hex::encode(&id[..16])).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonrpsee::core::traits::IdProvider;

    #[test]
    fn subscription_ids_look_like_geths() {
        let ids = HexIdProvider::new();
        let (a, b) = (ids.next_id(), ids.next_id());
        let jsonrpsee::types::SubscriptionId::Str(s) = &a else { panic!("not a string id") };
        assert_eq!(s.len(), 34);
        assert!(s.starts_with("0x") && s[2..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
