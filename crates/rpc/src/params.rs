//! Reading positional parameters with errors a client can act on: `-32602` with the
//! argument's position, what was expected and what was wrong (geth's "invalid argument
//! N: …" and "missing value for required argument N"), never a debug dump of the
//! parser's error object.

use jsonrpsee::types::params::ParamsSequence;
use jsonrpsee::types::{ErrorObjectOwned, Params};
use serde::Deserialize;

use crate::RpcError;

pub(crate) struct Args<'a> {
    seq: ParamsSequence<'a>,
    index: usize,
}

impl<'a> Args<'a> {
    pub fn new(params: &'a Params<'a>) -> Self {
        Self { seq: params.sequence(), index: 0 }
    }

    /// The next argument, required; `what` names it in errors ("address", "block").
    pub fn next<T: Deserialize<'a>>(&mut self, what: &str) -> Result<T, RpcError> {
        let index = self.index;
        self.index += 1;
        match self.seq.optional_next::<T>() {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(RpcError::InvalidParams(format!("missing value for required argument {index} ({what})"))),
            Err(e) => Err(argument_error(index, what, &e)),
        }
    }

    /// The next argument, optional (absent or `null`).
    pub fn opt<T: Deserialize<'a>>(&mut self, what: &str) -> Result<Option<T>, RpcError> {
        let index = self.index;
        self.index += 1;
        self.seq.optional_next::<T>().map_err(|e| argument_error(index, what, &e))
    }
}

/// `invalid argument N (what): detail`, the detail taken from the parser's message.
pub(crate) fn argument_error(index: usize, what: &str, e: &ErrorObjectOwned) -> RpcError {
    let detail = match e.data() {
        Some(raw) => serde_json::from_str::<String>(raw.get()).unwrap_or_else(|_| raw.get().to_string()),
        None => e.message().to_string(),
    };
    // serde's position suffix ("at line 1 column 9") is about the parameter's own text.
    let detail = match detail.rfind(" at line ") {
        Some(i) => detail[..i].to_string(),
        None => detail,
    };
    RpcError::InvalidParams(format!("invalid argument {index} ({what}): {detail}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{Address, B256};

    fn parse<T: for<'a> Deserialize<'a>>(json: &str, what: &str) -> Result<T, String> {
        let p = Params::new(Some(json));
        let mut args = Args::new(&p);
        args.next::<T>(what).map_err(|e| e.to_string())
    }

    #[test]
    fn errors_name_the_argument_and_the_problem_without_debug_text() {
        let short = parse::<B256>(r#"["0x1234"]"#, "transaction hash").expect_err("short hash");
        assert!(short.starts_with("invalid argument 0 (transaction hash): "), "{short}");
        let bad = parse::<Address>(r#"["0xzzzz"]"#, "address").expect_err("bad hex");
        assert!(bad.starts_with("invalid argument 0 (address): "), "{bad}");
        for m in [&short, &bad] {
            assert!(!m.contains("ErrorObject") && !m.contains("RawValue") && !m.contains("line 1"), "{m}");
        }
        let missing = parse::<Address>("[]", "address").expect_err("missing");
        assert_eq!(missing, "missing value for required argument 0 (address)");
        assert_eq!(parse::<B256>(&format!("[\"{}\"]", B256::ZERO), "hash"), Ok(B256::ZERO));
    }
}
