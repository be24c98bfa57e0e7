//! Golden fixtures of `cairn preconf verify`: fragments signed with viem (an EIP-712
//! implementation independent of Cairn's, `tools/preconf-fixtures.mjs`), each file
//! naming the verdict. The binary must reach it: the right conflict for every kind of
//! equivocation, kept and broken promises, and a refusal (exit 1) for pairs that are
//! no evidence (different signers, an altered fragment).

use std::path::Path;
use std::process::Command;

fn verify(args: &[&Path]) -> (i32, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn")).arg("preconf").arg("verify").args(args).output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let value = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), value, String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn every_fixture_gets_its_verdict() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/preconf");
    let mut judged = 0;
    for entry in std::fs::read_dir(&dir).expect("fixtures") {
        let path = entry.expect("entry").path();
        let fixture: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        let expect = fixture["expect"].as_str().expect("expect");
        let (code, verdict, stderr) = verify(&[&path]);
        let name = path.display();
        match expect {
            "none" => {
                assert_eq!(code, 0, "{name}: {stderr}");
                assert!(matches!(verdict["verdict"].as_str(), Some("consistent" | "promiseKept")), "{name}: {verdict}");
                assert_eq!(verdict["signer"], "0x70997970c51812dc3a010c7d01b50e0d17dc79c8", "{name}");
            }
            "error" => assert_eq!(code, 1, "{name}: {verdict} {stderr}"),
            "broken" => {
                assert_eq!(code, 3, "{name}: {stderr}");
                assert_eq!(verdict["verdict"], "brokenPromise", "{name}");
            }
            conflict => {
                assert_eq!(code, 3, "{name}: {stderr}");
                assert_eq!(verdict["verdict"], "equivocation", "{name}");
                assert_eq!(verdict["evidence"]["conflict"], conflict, "{name}");
                assert_eq!(verdict["evidence"]["signer"], "0x70997970c51812dc3a010c7d01b50e0d17dc79c8", "{name}");
            }
        }
        judged += 1;
    }
    assert_eq!(judged, 12);
}

#[test]
fn two_files_and_an_expected_sequencer() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/preconf");
    let pair: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("pair-same-position.json")).expect("read"))
            .expect("json");
    let (a, b) = (tmp.path().join("a.json"), tmp.path().join("b.json"));
    std::fs::write(&a, pair["a"].to_string()).expect("write");
    std::fs::write(&b, pair["b"].to_string()).expect("write");
    let (code, verdict, _) = verify(&[&a, &b]);
    assert_eq!((code, verdict["evidence"]["conflict"].as_str()), (3, Some("samePosition")));
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["preconf", "verify", "--sequencer", "0xe6bb5177cE5926c87C92F150623bE08f31D424b0"])
        .args([&a, &b])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "signed by another key than the expected sequencer");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not by the expected sequencer"));
}
