#!/usr/bin/env python3
"""Writes the committed seed corpus fuzz/corpus/<target>/ from the real
fixtures in fixtures/ethereum-etl and fixtures/bigquery-schema, plus a few
hand-made edge cases taken from the unit tests. Standard library only.

    python3 fuzz/make_corpus.py     # rewrites fuzz/corpus/ (a few dozen files a target)

The input formats are described in fuzz/src/lib.rs and fuzz_targets/*.rs.
"""

import csv
import json
import shutil
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
ETL = FUZZ.parent / "fixtures" / "ethereum-etl"
SCHEMAS = FUZZ.parent / "fixtures" / "bigquery-schema"
CORPUS = FUZZ / "corpus"

TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
NULL = "\\N"

# METADATA_SELECTORS order: symbol, SYMBOL, name, NAME, decimals, DECIMALS, totalSupply.
SELECTORS = ["95d89b41", "f76f8d78", "06fdde03", "a3f4df7e", "313ce567", "2e0f2625", "18160ddd"]


class Seeds:
    """One target's corpus directory; identical seeds are written once."""

    def __init__(self, target):
        self.dir = CORPUS / target
        self.dir.mkdir(parents=True)
        self.seen = set()

    def add(self, name, content):
        data = content.encode() if isinstance(content, str) else bytes(content)
        if data not in self.seen:
            self.seen.add(data)
            (self.dir / name).write_bytes(data)


def rpc_result(path):
    return json.loads(path.read_text())["result"]


def word(hex_tail):
    return "0x" + hex_tail.rjust(64, "0")


# ---- decode_transfer: one log, one field a line ----


def log_text(address, topics, data, block, tx, index):
    return "\n".join([address, ",".join(topics), NULL if data is None else data, block, tx, index])


def from_rpc(log):
    return log_text(
        log["address"],
        log.get("topics") or [],
        log.get("data"),
        log["blockNumber"],
        log["transactionHash"],
        log["logIndex"],
    )


def from_etl(log):
    return log_text(
        log["address"],
        log["topics"],
        log["data"],
        hex(log["block_number"]),
        log["transaction_hash"],
        hex(log["log_index"]),
    )


def decode_transfer_seeds():
    seeds = Seeds("decode_transfer")
    filter_logs = ETL / "test_export_token_transfers_job/block_with_transfers/web3_response.eth_getFilterLogs_0x0.json"
    for i, log in enumerate(rpc_result(filter_logs)):
        seeds.add(f"filter-logs-{i}", from_rpc(log))
    for receipts in ["test_export_receipts_job/receipts_with_logs", "test_stream/blocks_1755634_1755635"]:
        for path in sorted((ETL / receipts).glob("web3_response.eth_getTransactionReceipt_*.json")):
            for log in rpc_result(path)["logs"]:
                seeds.add(f"receipt-{path.stem[-8:]}-{int(log['logIndex'], 16)}", from_rpc(log))
    with open(ETL / "test_extract_token_transfers_job/logs/logs.csv", newline="") as f:
        for row in csv.DictReader(f):
            log = dict(row, topics=row["topics"].split(","), log_index=int(row["log_index"]),
                       block_number=int(row["block_number"]))
            seeds.add(f"logs-csv-{row['log_index']}", from_etl(log))
    # Block 17173049: every shape of Transfer log it has, and a few other events.
    shapes = {}
    for line in (ETL / "test_stream/blocks_17173049_17173050/expected_logs.json").read_text().splitlines():
        log = json.loads(line)
        is_transfer = bool(log["topics"]) and log["topics"][0] == TRANSFER
        shape = (is_transfer, len(log["topics"]), len(log["data"]) - 2 if is_transfer else 0)
        shapes.setdefault(shape, []).append(log)
    for (is_transfer, topics, _), logs in sorted(shapes.items()):
        for log in logs[:3] if is_transfer else [logs[0], logs[-1]]:
            kind = "transfer" if is_transfer else "other"
            words = (len(log["data"]) - 2 + 63) // 64
            seeds.add(f"block-17173049-{kind}-{topics}t-{words}w-{log['log_index']}", from_etl(log))

    # Edge cases of the unit tests (rules 7-13).
    tx = "0x5cb4fc2e3d217f3c286358d6bc042259c8befb0dabe450567a987f5770043157"
    frm, to = word("9f73bc871764c879fd9e0f524278373fa7875068"), word("f51bc4633f5924465c8c6317169faf3e4312e82f")
    token = "0xC66EA802717bfb9833400264dd12c2bceaa34a6d"

    def edge(name, topics, data, block="0x162a25", txh=tx, index="0x3"):
        seeds.add(f"edge-{name}", log_text(token, topics, data, block, txh, index))

    edge("uppercase-topic", [TRANSFER.upper(), frm, to], word("5e8adca7e45940000"))
    edge("two-topics-two-words", [TRANSFER, frm], "0x" + to[2:] + word("7")[2:])
    edge("unindexed", [TRANSFER], "0x" + frm[2:] + to[2:] + word("7")[2:])
    edge("erc721-no-data", [TRANSFER, frm, to, word("1f")], None)
    edge("forty-bytes", [TRANSFER, word("1"), word("2")], "0x" + "00" * 32 + "11" * 8)
    edge("twenty-bytes", [TRANSFER, word("1"), word("2")], "0x" + "01" * 20)
    edge("short-words", [TRANSFER, "0x" + "A" * 37, "0x" + "A" * 38], word("1"))
    edge("value-too-big", [TRANSFER, word("1"), word("2"), "0x1" + "0" * 64], "0x")
    edge("value-max", [TRANSFER, frm, word("0")], "0x" + "f" * 64)
    edge("five-topics", [TRANSFER, word("1"), word("1"), word("1"), word("1")], "0x")
    edge("bad-log-index", [TRANSFER, frm, to], word("3"), index="0x3g")
    edge("block-2-63", [TRANSFER, frm, to], word("3"), block="0x8000000000000000")
    edge("short-hash", [TRANSFER, frm, to], word("3"), txh="0x1234")
    edge("shorthand-topic", ["T", frm, to], word("3"))
    edge("multibyte-data", [TRANSFER, frm], "0xé" + "ü" * 70)
    edge("approval", ["0x8c5be1e5ebec7d5bd14f71427d1e84f3dd0314c0f7b2291e5b200ac8c7c3b925", frm, to], word("1"))


# ---- abi_metadata: up to seven outcomes ----


def outcomes(answers):
    out = bytearray()
    for answer in answers:
        if answer is None:
            out.append(0)
        else:
            out.append(1)
            out += len(answer).to_bytes(2, "big")
            out += answer
    return bytes(out)


def w(n):
    return n.to_bytes(32, "big")


def s(text):
    body = text if isinstance(text, bytes) else text.encode()
    padded = body + b"\0" * (-len(body) % 32)
    return w(32) + w(len(body)) + padded


def b32(body):
    return body + b"\0" * (32 - len(body))


def abi_metadata_seeds():
    seeds = Seeds("abi_metadata")
    calls = sorted(ETL.glob("*/*/web3_response.eth_call_data_0x*"))
    tokens = sorted({(p.parent, p.name.split("_to_")[1].split("_")[0]) for p in calls})
    for directory, token in tokens:
        answers = []
        for selector in SELECTORS:
            path = directory / f"web3_response.eth_call_data_0x{selector}_to_{token}_latest.json"
            answer = json.loads(path.read_text()) if path.exists() else {"error": "no mock"}
            ok = answer.get("error") is None and isinstance(answer.get("result"), str)
            answers.append(bytes.fromhex(answer["result"][2:]) if ok else None)
        seeds.add(f"token-{token}", outcomes(answers))
        for selector, answer in zip(SELECTORS, answers):
            if answer is not None:
                seeds.add(f"call-{token[:10]}-{selector}", outcomes([answer]))

    def edge(name, *answers):
        seeds.add(f"edge-{name}", outcomes(answers))

    edge("standard", s("ABC"), None, s("Alpha"), None, w(18), None, w(255))
    edge("bytes32-mkr", b32(b"MKR"), None, b32(b"Maker"))
    edge("string-invalid-utf8", s(b"\xff\xfeAB"), None, s("ok"))
    edge("bytes32-invalid-utf8", b32(b"\xff\xfe"), b32(b"UP"), b32(b"\xc3"))
    edge("decimals-256", None, None, None, None, w(256), w(6))
    edge("offset-0x40", w(0x40) + w(0) + w(3) + b32(b"ABC"))
    edge("length-absurd", w(0x20) + w(0xFFFF))
    edge("max-supply", None, None, None, None, None, None, b"\xff" * 32)
    edge("utf8", s("Ünï"), s("x"))
    edge("nuls", s(b"E\0T\0H"), None, b32(b"AB"))
    edge("short-answers", b"A", b"A", b"A", b"A", b"\x01", b"\x01", b"\x01")
    edge("extra-words", None, None, None, None, w(18) + w(5), None, w(7) + w(9))


# ---- bigquery_row: a header line, then one cell a line ----


def transfer_cells(row, timestamp):
    return [row["token_address"], row["from_address"], row["to_address"], str(row["value"]),
            row["transaction_hash"], str(row["log_index"]), timestamp, str(row["block_number"]),
            row["block_hash"]]


def token_cells(row, timestamp):
    return [row["address"], row["symbol"], row["name"], row["decimals"], row["total_supply"],
            timestamp, row["block_number"], row["block_hash"]]


def cells_text(header, cells):
    return "\n".join([header] + [NULL if c is None else c for c in cells])


def legacy(seconds):
    """BigQuery's float-seconds TIMESTAMP text, e.g. 1.683029999E9."""
    digits = str(seconds)
    return f"{digits[0]}.{digits[1:] or '0'}E{len(digits) - 1}"


def fixture_transfers():
    lines = []
    for block in ["blocks_17173049_17173050", "blocks_1755634_1755635"]:
        lines += (ETL / "test_stream" / block / "expected_token_transfers.json").read_text().splitlines()
    return [json.loads(line) for line in lines if line]


def fixture_tokens():
    tokens = []
    for line in (ETL / "test_stream/blocks_2112234_2112234/expected_tokens.json").read_text().splitlines():
        row = json.loads(line)
        tokens.append(dict(row, decimals=str(row["decimals"]), total_supply=str(row["total_supply"]),
                           block_number=str(row["block_number"])))
    for directory in sorted((ETL / "test_export_tokens_job").iterdir()):
        block = rpc_result(directory / "eth_getBlockByNumber.json")
        with open(directory / "expected_tokens.csv", newline="") as f:
            for row in csv.DictReader(f):
                tokens.append(dict(row, block_timestamp=int(block["timestamp"], 16),
                                   block_number=str(int(block["number"], 16)), block_hash=block["hash"]))
    return tokens


def bigquery_row_seeds():
    seeds = Seeds("bigquery_row")
    transfers = fixture_transfers()
    by_value = sorted(transfers, key=lambda r: r["value"])
    picked = transfers[:4] + by_value[:2] + by_value[-2:] + transfers[-2:]
    for i, row in enumerate(picked):
        micros = str(row["block_timestamp"] * 1_000_000)
        timestamp = legacy(row["block_timestamp"]) if i % 3 == 2 else micros
        seeds.add(f"transfer-{row['block_number']}-{row['log_index']}",
                  cells_text(f"token_transfers {i % 4}", transfer_cells(row, timestamp)))
    tokens = fixture_tokens()
    for i, row in enumerate(tokens):
        seeds.add(f"token-{row['address'][:10]}",
                  cells_text(f"tokens {i}", token_cells(row, str(row["block_timestamp"] * 1_000_000))))

    base, token = transfers[0], tokens[0]
    micros = str(base["block_timestamp"] * 1_000_000)

    def edge_transfer(name, index, cell):
        cells = transfer_cells(base, micros)
        cells[index] = cell
        seeds.add(f"edge-transfer-{name}", cells_text("token_transfers 1", cells))

    def edge_token(name, index, cell):
        cells = token_cells(token, micros)
        cells[index] = cell
        seeds.add(f"edge-token-{name}", cells_text("tokens 2", cells))

    edge_transfer("null-from", 1, None)
    edge_transfer("null-value", 3, None)
    edge_transfer("value-over-max", 3, "1" + "0" * 78)
    edge_transfer("uppercase-hash", 4, base["transaction_hash"].upper().replace("0X", "0x"))
    edge_transfer("short-hash", 4, "0xbeef")
    edge_transfer("negative-log-index", 5, "-1")
    edge_transfer("legacy-999999", 6, "1.6553375999999988E9")
    edge_transfer("decimal-seconds", 6, "1709251200.5")
    edge_transfer("huge-exponent", 6, "1.0E99")
    edge_transfer("timestamp-out-of-range", 6, "9223372036854775807")
    # Regression seeds: exponents that overflowed the shift in page.rs.
    edge_transfer("exponent-i32-max", 6, "1e2147483647")
    edge_transfer("exponent-i32-min", 6, "1.5E-2147483648")
    edge_token("nul-in-symbol", 1, "E\0TH")
    edge_token("decimals-not-a-number", 3, "abc")
    edge_token("supply-over-max", 4, "9" * 80)
    edge_token("null-name", 2, None)


# ---- bigquery_page: a getQueryResults answer ----


def page(schema, rows, total=None):
    answer = {
        "kind": "bigquery#getQueryResultsResponse",
        "schema": {"fields": schema},
        "jobReference": {"projectId": "fuzz", "jobId": "job_1", "location": "US"},
        "totalRows": str(len(rows) if total is None else total),
        "rows": [{"f": [{"v": cell} for cell in row]} for row in rows],
        "jobComplete": True,
    }
    return json.dumps(answer, indent=1, ensure_ascii=False)


def bigquery_page_seeds():
    seeds = Seeds("bigquery_page")
    transfer_schema = [{k: f[k] for k in ("name", "type", "mode") if k in f}
                       for f in json.loads((SCHEMAS / "token_transfers.json").read_text())]
    token_schema = [{k: f[k] for k in ("name", "type", "mode") if k in f}
                    for f in json.loads((SCHEMAS / "tokens.json").read_text())]
    transfers = fixture_transfers()

    def micros(row):
        return str(row["block_timestamp"] * 1_000_000)

    rows = [transfer_cells(r, micros(r)) for r in transfers[:3]]
    seeds.add("transfers-int64-timestamps", page(transfer_schema, rows))
    legacy_rows = [transfer_cells(r, legacy(r["block_timestamp"])) for r in transfers[3:6]]
    legacy_schema = [dict(f, type={"INT64": "INTEGER"}.get(f["type"], f["type"])) for f in transfer_schema]
    seeds.add("transfers-legacy-types", page(legacy_schema, legacy_rows))
    shuffled = transfer_schema[::-1] + [{"name": "item_id", "type": "STRING"}]
    seeds.add("transfers-shuffled", page(shuffled, [row[::-1] + ["x"] for row in rows]))
    tokens = fixture_tokens()
    seeds.add("tokens", page(token_schema, [token_cells(t, micros(t)) for t in tokens]))

    odd = [list(rows[0]), list(rows[1]), list(rows[2])]
    odd[0][1] = None
    odd[1][3] = int(odd[1][3])
    seeds.add("transfers-null-and-number-cells", page(transfer_schema, odd))
    seeds.add("transfers-short-row", page(transfer_schema, [rows[0][:5]]))
    seeds.add("transfers-no-rows", page(transfer_schema, [], total=0))
    seeds.add("transfers-missing-column", page(transfer_schema[:-1], [r[:-1] for r in rows]))
    seeds.add("no-schema", json.dumps({"jobComplete": False, "totalRows": "0"}))
    nested = [dict(f) for f in token_schema]
    nested[1]["type"] = "RECORD"
    record_row = token_cells(tokens[0], micros(tokens[0]))
    record_row[1] = {"f": [{"v": "ETH"}]}
    seeds.add("tokens-record-cell", page(nested, [record_row]))


# ---- erc1155_logs: logs separated by a line "--" ----

SINGLE = "0xc3d58168c5ae7397731d063d5bbf3d657854427343f4c083240f7aacaa2d0f62"
BATCH = "0x4a39dc06d4c0dbc64b70af90fd698a233a518aa5d07e595d983b8c0526c8f7fb"


def batch_data(ids, values):
    """ABI-encoded (uint256[] ids, uint256[] values)."""
    words = [64, 64 + 32 * (len(ids) + 1), len(ids), *ids, len(values), *values]
    return "0x" + "".join(f"{w:064x}" for w in words)


def erc1155_logs_seeds():
    seeds = Seeds("erc1155_logs")
    # Block 17173049-17173050: its ERC-1155 logs, each alone and all together
    # with a Transfer and another event, as one eth_getLogs answer mixes them.
    real, others = [], []
    for line in (ETL / "test_stream/blocks_17173049_17173050/expected_logs.json").read_text().splitlines():
        log = json.loads(line)
        first = log["topics"][0] if log["topics"] else None
        (real if first in (SINGLE, BATCH) else others).append(log)
    for log in real:
        seeds.add(f"block-{log['block_number']}-{log['log_index']}", from_etl(log))
    is_transfer = [bool(l["topics"]) and l["topics"][0] == TRANSFER for l in others]
    mixed = real + [others[is_transfer.index(True)], others[is_transfer.index(False)]]
    seeds.add("block-17173049-mixed", "\n--\n".join(from_etl(l) for l in mixed))

    # Edge cases of the decoder's unit tests.
    tx = "0x5cb4fc2e3d217f3c286358d6bc042259c8befb0dabe450567a987f5770043157"
    token = "0xAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAa"
    parties = [word("11" * 20), word("00" * 20), word("22" * 20)]

    def text(topics, data, index="0x7"):
        return log_text(token, topics, data, "0x64", tx, index)

    def edge(name, topics, data):
        seeds.add(f"edge-{name}", text(topics, data))

    edge("single", ["S", *parties], "0x" + word("2a")[2:] + "f" * 64)
    edge("single-uppercase-topic", [SINGLE.upper(), *parties], "0x" + word("1")[2:] + word("2")[2:])
    edge("single-two-topics", ["S", parties[0]], "0x" + word("1")[2:] + word("2")[2:])
    edge("single-three-words", ["S", *parties], "0x" + word("1")[2:] * 3)
    edge("single-short-word", ["S", *parties], "0x" + word("1")[2:] + "02")
    edge("single-not-hex", ["S", *parties], "0x" + "zz" * 64)
    edge("single-non-hex-operator", ["S", "0x" + "zz" * 32, parties[1], parties[2]], "0x" + word("1")[2:] * 2)
    edge("batch-three", ["B", *parties], batch_data([1, 2, 3], [10, 20, 30]))
    edge("batch-fifty", ["B", *parties], batch_data(list(range(1, 51)), [i * 10 for i in range(1, 51)]))
    edge("batch-empty", ["B", *parties], batch_data([], []))
    edge("batch-unequal", ["B", *parties], batch_data([1, 2], [5]))
    edge("batch-truncated", ["B", *parties], batch_data([1, 2, 3], [4, 5, 6])[:-64])
    edge("batch-odd-length", ["B", *parties], "0x1234")
    edge("batch-no-data", ["B", *parties], None)
    edge("batch-huge-length", ["B", *parties], "0x" + f"{64:064x}{96:064x}" + "f" * 64 + f"{0:064x}")
    edge("batch-offset-not-a-word", ["B", *parties], "0x" + f"{65:064x}{96:064x}" + f"{0:064x}" * 2)
    edge("batch-max-values", ["B", *parties], batch_data([2**256 - 1], [2**256 - 1]))
    edge("transfer-topic", ["T", *parties], word("1"))
    edge("no-topics", [], "0x")
    seeds.add("edge-mixed", "\n--\n".join([
        text(["S", *parties], "0x" + word("1")[2:] + word("2")[2:], "0x1"),
        text(["B", *parties], batch_data([1, 2], [5]), "0x2"),
        text(["B", *parties], batch_data([7, 8], [70, 80]), "0x3"),
        text(["T", *parties], word("1"), "0x4"),
        text(["S", *parties], "0x", "0x5"),
    ]))


def main():
    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    decode_transfer_seeds()
    abi_metadata_seeds()
    bigquery_row_seeds()
    bigquery_page_seeds()
    erc1155_logs_seeds()
    for target in sorted(CORPUS.iterdir()):
        print(f"{target.relative_to(FUZZ.parent)}: {len(list(target.iterdir()))} files")


if __name__ == "__main__":
    main()
