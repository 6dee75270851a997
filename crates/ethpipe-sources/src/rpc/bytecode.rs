//! Reads a contract's function selectors from its runtime code and decides
//! from them whether it is an ERC-20 or ERC-721 token, as ethereum-etl's
//! `EthContractService` does (docs/rpc-semantics.md, rules 19–21).

const JUMPDEST: u8 = 0x5b;
const PUSH1: u8 = 0x60;
const PUSH4: u8 = 0x63;
const PUSH32: u8 = 0x7f;

use super::abi::{Function, TOTAL_SUPPLY};

const BALANCE_OF: Function = Function::new("balanceOf(address)");
const TRANSFER: Function = Function::new("transfer(address,uint256)");
const TRANSFER_FROM: Function = Function::new("transferFrom(address,address,uint256)");
const APPROVE: Function = Function::new("approve(address,uint256)");
const ALLOWANCE: Function = Function::new("allowance(address,address)");
const OWNER_OF: Function = Function::new("ownerOf(uint256)");

/// The operands of the complete PUSH4s before the first JUMPDEST, as
/// `0x` + 8 lowercase hex digits, sorted and de-duplicated.
///
/// ethereum-etl reads only the first basic block of the disassembly, so
/// modern solc's dispatchers (behind a CALLVALUE check and its JUMPDEST) give
/// nothing; BigQuery's `tokens` has that gap and so must ours (rule 19).
/// Code that is not hex gives nothing too: nodes never send it.
pub fn function_sighashes(code_hex: Option<&str>) -> Vec<String> {
    let Some(code) = code_hex.and_then(hex_to_bytes) else {
        return Vec::new();
    };
    let mut selectors: Vec<String> = first_block_push4_operands(&code)
        .into_iter()
        .map(|operand| format!("0x{}", hex::encode(operand)))
        .collect();
    selectors.sort();
    selectors.dedup();
    selectors
}

/// All six ERC-20 selectors are present (`is_erc20_contract`).
pub fn is_erc20(sighashes: &[String]) -> bool {
    let has = |function| contains(sighashes, function);
    [
        TOTAL_SUPPLY,
        BALANCE_OF,
        TRANSFER,
        TRANSFER_FROM,
        APPROVE,
        ALLOWANCE,
    ]
    .into_iter()
    .all(has)
}

/// balanceOf, ownerOf, transfer or transferFrom, and approve
/// (`is_erc721_contract`).
pub fn is_erc721(sighashes: &[String]) -> bool {
    let has = |function| contains(sighashes, function);
    has(BALANCE_OF) && has(OWNER_OF) && (has(TRANSFER) || has(TRANSFER_FROM)) && has(APPROVE)
}

fn contains(sighashes: &[String], function: Function) -> bool {
    sighashes.contains(&function.selector_hex())
}

/// evmdasm's first basic block: every byte is an opcode except PUSH data, and
/// only a JUMPDEST opcode starts a new block. A PUSH4 cut short by the end of
/// the code is an INVALID instruction, not a selector.
fn first_block_push4_operands(code: &[u8]) -> Vec<&[u8]> {
    let mut operands = Vec::new();
    let mut pc = 0;
    while let Some(&opcode) = code.get(pc) {
        if opcode == JUMPDEST {
            break;
        }
        if opcode == PUSH4 {
            operands.extend(code.get(pc + 1..pc + 5));
        }
        pc += 1 + push_width(opcode);
    }
    operands
}

fn push_width(opcode: u8) -> usize {
    if (PUSH1..=PUSH32).contains(&opcode) {
        usize::from(opcode - PUSH1) + 1
    } else {
        0
    }
}

/// `0x`-prefixed (or bare) even-length hex; `0x` and `""` are no bytes.
pub(crate) fn hex_to_bytes(text: &str) -> Option<Vec<u8>> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    hex::decode(digits).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/ethereum-etl");

    fn fixture_json(path: &str) -> Value {
        let full = format!("{FIXTURES}/{path}");
        let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"));
        serde_json::from_str(&text).expect("JSON")
    }

    /// The first line of a JSON-lines file.
    fn first_row(path: &str) -> Value {
        let full = format!("{FIXTURES}/{path}");
        let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"));
        serde_json::from_str(text.lines().next().expect("a row")).expect("JSON")
    }

    fn strings(values: &Value) -> Vec<String> {
        serde_json::from_value(values.clone()).expect("a list of strings")
    }

    fn sighashes(code: &str) -> Vec<String> {
        function_sighashes(Some(code))
    }

    // ---- rule 19 ----

    #[test]
    fn no_code_gives_no_selectors() {
        assert!(function_sighashes(None).is_empty());
        assert!(sighashes("").is_empty());
        assert!(sighashes("0x").is_empty());
        assert!(sighashes("0x6").is_empty());
        assert!(sighashes("0x63zzzzzzzz").is_empty());
    }

    #[test]
    fn selectors_stop_at_the_first_jumpdest_opcode() {
        assert_eq!(sighashes("0x63aabbccdd5b6311223344"), ["0xaabbccdd"]);
        assert!(sighashes("0x5b63aabbccdd").is_empty());
        // 0x5b inside PUSH data is not an opcode, nor is 0x63.
        assert_eq!(sighashes("0x605b63aabbccdd"), ["0xaabbccdd"]);
        assert_eq!(sighashes("0x6263aabb63aabbccdd"), ["0xaabbccdd"]);
        let push32 = format!("0x7f{}63aabbccdd", "5b63".repeat(16));
        assert_eq!(sighashes(&push32), ["0xaabbccdd"]);
    }

    #[test]
    fn selectors_are_lowercase_sorted_and_unique_masks_included() {
        let code = "0x63FFFFFFFF63AABBCCDD63aabbccdd6301020304";
        assert_eq!(sighashes(code), ["0x01020304", "0xaabbccdd", "0xffffffff"]);
    }

    #[test]
    fn a_push4_cut_short_by_the_end_of_code_is_not_collected() {
        assert_eq!(sighashes("0x63aabbccdd63aabbcc"), ["0xaabbccdd"]);
        assert!(sighashes("0x63aabbcc").is_empty());
    }

    #[test]
    fn fixture_cryptokitties_is_erc721_not_erc20() {
        let dir = "test_export_contracts_job/erc721_contract";
        let answer = fixture_json(&format!(
            "{dir}/web3_response.eth_getCode_0x06012c8cf97bead5deae237070f9587f8e7a266d_latest.json"
        ));
        let found = function_sighashes(answer["result"].as_str());
        let expected = first_row(&format!("{dir}/expected_contracts.json"));
        assert_eq!(found, strings(&expected["function_sighashes"]));
        assert_eq!(found.len(), 60);
        assert!(is_erc721(&found));
        assert!(!is_erc20(&found));
        assert_eq!(expected["is_erc721"], Value::Bool(true));
        assert_eq!(expected["is_erc20"], Value::Bool(false));
    }

    #[test]
    fn fixture_modern_solc_code_gives_no_selectors() {
        let path = "test_stream/blocks_17173049_17173050/expected_transactions.json";
        let text = std::fs::read_to_string(format!("{FIXTURES}/{path}")).expect("fixture");
        let tx: Value = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("JSON"))
            .find(|t| {
                t["hash"] == "0xf9e4ca8a940bd7f192dd12e75b32938f187e8098a41817a8e611448e22cca9cc"
            })
            .expect("the deployment");
        let input = tx["input"].as_str().expect("input");
        let runtime = format!("0x{}", &input[2 + 2 * 871..]);
        assert!(runtime.starts_with("0x6080604052348015"));
        assert!(sighashes(&runtime).is_empty());
        // The dispatcher is there, only behind the JUMPDEST.
        assert!(runtime.contains("6370a08231"));
    }

    /// Rule 18: the code examined is the `create` trace's `result.code`.
    fn check_trace_contract(dir: &str, trace_file: &str) -> Vec<String> {
        let traces = fixture_json(&format!("{dir}/{trace_file}"));
        let creates: Vec<&Value> = traces["result"]
            .as_array()
            .expect("traces")
            .iter()
            .filter(|t| t["type"] == "create")
            .collect();
        assert_eq!(creates.len(), 1, "{dir}");
        let code = creates[0]["result"]["code"].as_str().expect("code");
        let expected = first_row(&format!("{dir}/expected_contracts.json"));
        assert_eq!(expected["bytecode"].as_str(), Some(code));
        let found = sighashes(code);
        assert_eq!(found, strings(&expected["function_sighashes"]), "{dir}");
        assert_eq!(Value::Bool(is_erc20(&found)), expected["is_erc20"], "{dir}");
        assert_eq!(
            Value::Bool(is_erc721(&found)),
            expected["is_erc721"],
            "{dir}"
        );
        found
    }

    #[test]
    fn fixture_stream_2112234_is_erc20() {
        let dir = "test_stream/blocks_2112234_2112234";
        let found = check_trace_contract(dir, "web3_response.trace_block_0x203aea.json");
        assert_eq!(found.len(), 11);
        assert!(is_erc20(&found) && !is_erc721(&found));
    }

    #[test]
    fn fixture_stream_508110_is_no_token() {
        let dir = "test_stream/blocks_508110_508110";
        let found = check_trace_contract(dir, "web3_response.trace_block_0x7c0ce.json");
        assert_eq!(found.len(), 10);
        assert!(!is_erc20(&found) && !is_erc721(&found));
    }

    // ---- rules 20 and 21 ----

    fn owned(functions: &[Function]) -> Vec<String> {
        functions.iter().map(|f| f.selector_hex()).collect()
    }

    #[test]
    fn the_detection_selectors_are_ethereum_etls() {
        for (function, selector) in [
            (TOTAL_SUPPLY, "0x18160ddd"),
            (BALANCE_OF, "0x70a08231"),
            (TRANSFER, "0xa9059cbb"),
            (TRANSFER_FROM, "0x23b872dd"),
            (APPROVE, "0x095ea7b3"),
            (ALLOWANCE, "0xdd62ed3e"),
            (OWNER_OF, "0x6352211e"),
        ] {
            assert_eq!(
                function.selector_hex(),
                selector,
                "{}",
                function.signature()
            );
        }
    }

    #[test]
    fn erc20_needs_all_six() {
        let six = [
            TOTAL_SUPPLY,
            BALANCE_OF,
            TRANSFER,
            TRANSFER_FROM,
            APPROVE,
            ALLOWANCE,
        ];
        assert!(is_erc20(&owned(&six)));
        for missing in 0..six.len() {
            let mut five = owned(&six);
            five.remove(missing);
            assert!(!is_erc20(&five), "without {}", six[missing].signature());
        }
        assert!(!is_erc721(&owned(&six)));
    }

    #[test]
    fn erc721_needs_transfer_or_transfer_from() {
        assert!(is_erc721(&owned(&[
            BALANCE_OF, OWNER_OF, TRANSFER, APPROVE
        ])));
        assert!(is_erc721(&owned(&[
            BALANCE_OF,
            OWNER_OF,
            TRANSFER_FROM,
            APPROVE
        ])));
        assert!(!is_erc721(&owned(&[BALANCE_OF, OWNER_OF, APPROVE])));
        assert!(!is_erc721(&owned(&[
            BALANCE_OF,
            TRANSFER,
            TRANSFER_FROM,
            APPROVE
        ])));
        assert!(!is_erc721(&owned(&[OWNER_OF, TRANSFER, APPROVE])));
        assert!(!is_erc721(&owned(&[BALANCE_OF, OWNER_OF, TRANSFER])));
    }

    #[test]
    fn both_flags_hold_for_the_union_of_both_sets() {
        let code: String = [
            TOTAL_SUPPLY,
            BALANCE_OF,
            TRANSFER,
            TRANSFER_FROM,
            APPROVE,
            ALLOWANCE,
            OWNER_OF,
        ]
        .iter()
        .map(|f| format!("63{}", &f.selector_hex()[2..]))
        .collect();
        let found = sighashes(&format!("0x{code}5b"));
        assert_eq!(found.len(), 7);
        assert!(is_erc20(&found) && is_erc721(&found));
    }

    #[test]
    fn hex_to_bytes_rejects_odd_and_non_hex() {
        assert_eq!(hex_to_bytes("0x"), Some(vec![]));
        assert_eq!(hex_to_bytes("0X0aFf"), Some(vec![0x0a, 0xff]));
        assert_eq!(hex_to_bytes("0aff"), Some(vec![0x0a, 0xff]));
        assert_eq!(hex_to_bytes("0x0"), None);
        assert_eq!(hex_to_bytes("0x+1"), None);
        assert_eq!(hex_to_bytes("0xé1"), None);
    }
}
