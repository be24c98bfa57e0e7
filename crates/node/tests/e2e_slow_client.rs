//! A client that sends and never reads cannot grow the node without bound: 200 large
//! `eth_getLogs` requests over one WebSocket whose answers are never read (about 375 MiB
//! of answers) keep the node's resident memory within the documented bound (the
//! connection's 32 MiB answer budget, one answer, and the 16 calls it may run at once,
//! each building a 2 MB answer), the connection is cut long before the 60 s ping timeout
//! would, another client is answered all along, and a second such client after the
//! first stays within the same bound (what the first held was released, not kept)
//! (`crates/rpc/src/budget.rs`).

mod common;

use alloy_primitives::Address;
use cairn_primitives::{dev_accounts, DEV_MNEMONIC};
use cairn_workload::TxFactory;
use common::{rpc_raw, Node};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).expect("kB").parse::<u64>().expect("number") * 1024
}

/// A masked WebSocket text frame (mask key zero: the payload is sent as is).
fn ws_text(payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x81];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n < 65_536 => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(payload);
    frame
}

const MIB: u64 = 1024 * 1024;
/// What the node may grow by while the client is connected (see the module docs).
const BOUND: u64 = 192 * MIB;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_bounded_and_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let (client, url) = (reqwest::Client::new(), node.http());
    let pid = node.child.id();
    // A contract whose every call logs 96 KiB (LOG0 of memory [0, 0x18000)); ten calls
    // make each `eth_getLogs` answer about 2 MB.
    let logger = Address::repeat_byte(0x10);
    let r = rpc_raw(&client, &url, "anvil_setCode", json!([logger, "0x620180005fa000"])).await;
    assert!(r.get("error").is_none(), "{r}");
    let signer = dev_accounts(DEV_MNEMONIC, 1).expect("derive").remove(0).signer;
    let f = TxFactory::new(31337);
    let mut last = json!(null);
    for nonce in 0..10 {
        let tx = f.call(&signer, nonce, logger, Vec::new(), 1_000_000).expect("sign");
        let raw = alloy_primitives::hex::encode_prefixed(alloy_eips::eip2718::Encodable2718::encoded_2718(&tx));
        last = rpc_raw(&client, &url, "eth_sendRawTransaction", json!([raw])).await["result"].clone();
    }
    let receipt = common::wait_receipt(&client, &url, &last, Duration::from_secs(60)).await;
    assert_eq!(receipt["status"], "0x1");
    let filter = json!({"fromBlock": "0x0", "toBlock": "latest", "address": logger});
    let answer = rpc_raw(&client, &url, "eth_getLogs", json!([filter])).await;
    let answer_bytes = answer.to_string().len() as u64;
    assert!(answer_bytes > 1_800_000, "{answer_bytes} bytes an answer");
    let before = rss(pid);

    for round in 0..2 {
        // The client: a WebSocket handshake, then 200 requests, never reading.
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("small receive buffer");
        let mut stream =
            socket.connect(format!("127.0.0.1:{}", node.port).parse().expect("addr")).await.expect("connect");
        stream
            .write_all(
                b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            )
            .await
            .expect("handshake");
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await.expect("handshake answer");
            head.push(byte[0]);
        }
        assert!(String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
        let started = Instant::now();
        let mut peak = before;
        let mut sent = 0;
        for id in 0..200 {
            let request = json!({"jsonrpc": "2.0", "id": id, "method": "eth_getLogs", "params": [filter]});
            if stream.write_all(&ws_text(request.to_string().as_bytes())).await.is_err() {
                break;
            }
            sent += 1;
            peak = peak.max(rss(pid));
        }
        // Until the node cuts the connection (a write fails), watch its memory and check
        // that another client is answered.
        let cut = loop {
            peak = peak.max(rss(pid));
            let other =
                tokio::time::timeout(Duration::from_secs(10), rpc_raw(&client, &url, "eth_blockNumber", json!([])))
                    .await
                    .expect("another client is answered meanwhile");
            assert!(other["result"].is_string(), "{other}");
            let ping = json!({"jsonrpc": "2.0", "id": "p", "method": "eth_chainId", "params": []});
            if stream.write_all(&ws_text(ping.to_string().as_bytes())).await.is_err() {
                break started.elapsed();
            }
            assert!(started.elapsed() < Duration::from_secs(50), "not cut within 50 s (the ping timeout is 60 s)");
            tokio::task::yield_now().await;
        };
        let grew = peak.saturating_sub(before);
        eprintln!(
        "round {round}: {sent} requests sent, cut after {cut:?}; RSS {} MiB before, peak +{} MiB (bound {} MiB; unread answers would be {} MiB)",
        before / MIB,
        grew / MIB,
        BOUND / MIB,
        answer_bytes * 200 / MIB
    );
        assert!(grew < BOUND, "the node grew by {} MiB", grew / MIB);
    }
    // A reading client on a new connection gets its answers.
    let again = rpc_raw(&client, &url, "eth_getBalance", json!([Address::ZERO, "latest"])).await;
    assert!(again["result"].is_string(), "{again}");
}
