// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

// An event emitter for the erc1155_transfers dataset, not a real ERC-1155
// token: every function logs exactly what its arguments say, so a test can
// produce mints (from 0x0), burns (to 0x0), large batches, extreme values and
// the malformed logs that the decoder must count as skipped.
//
// Decoding rules the shapes below are meant to exercise (the testkit's
// independent check, src/erc1155.rs, states them in full):
//   TransferSingle: exactly 4 topics [T, operator, from, to], data = id ++ value (64 bytes)
//   TransferBatch:  exactly 4 topics, data = abi.encode(uint256[] ids, uint256[] values)
//                   that decodes within the data, with as many ids as values
//
// detect: Erc1155Shapes none

contract Erc1155Shapes {
    bytes32 public constant TRANSFER_SINGLE_TOPIC =
        keccak256("TransferSingle(address,address,address,uint256,uint256)");
    bytes32 public constant TRANSFER_BATCH_TOPIC =
        keccak256("TransferBatch(address,address,address,uint256[],uint256[])");

    event TransferSingle(
        address indexed operator, address indexed from, address indexed to, uint256 id, uint256 value
    );
    event TransferBatch(
        address indexed operator, address indexed from, address indexed to, uint256[] ids, uint256[] values
    );
    /// ERC-20's Transfer, to mix the two standards in one transaction.
    event Transfer(address indexed from, address indexed to, uint256 value);

    function emitSingle(address operator, address from, address to, uint256 id, uint256 value) external {
        emit TransferSingle(operator, from, to, id, value);
    }

    /// Logs the arrays as given: unequal lengths make a malformed batch.
    function emitBatch(
        address operator,
        address from,
        address to,
        uint256[] calldata ids,
        uint256[] calldata values
    ) external {
        emit TransferBatch(operator, from, to, ids, values);
    }

    /// One batch of `count` ids `firstId, firstId + 1, …`, value of id i = i + 1
    /// (mints of a whole collection in one log, without a huge calldata).
    function emitBatchRange(address operator, address from, address to, uint256 firstId, uint256 count) external {
        uint256[] memory ids = new uint256[](count);
        uint256[] memory values = new uint256[](count);
        for (uint256 i = 0; i < count; i++) {
            ids[i] = firstId + i;
            values[i] = firstId + i + 1;
        }
        emit TransferBatch(operator, from, to, ids, values);
    }

    /// In this order: ERC-20 Transfer(from, to, amount), TransferSingle(msg.sender,
    /// from, to, id, value), ERC-20 Transfer(to, from, amount).
    function emitTransferAndSingle(address from, address to, uint256 amount, uint256 id, uint256 value) external {
        emit Transfer(from, to, amount);
        emit TransferSingle(msg.sender, from, to, id, value);
        emit Transfer(to, from, amount);
    }

    /// Four TransferSingle-topic logs that must all be skipped, in this order:
    ///  0. 3 topics [T, operator, from], data to ++ id ++ value       (too few topics)
    ///  1. 2 topics [T, operator], data from ++ to ++ id ++ value     (too few topics)
    ///  2. 4 topics, data id only (32 bytes)                          (data too short)
    ///  3. 4 topics, no data                                          (data too short)
    function emitMalformedSingles(address operator, address from, address to, uint256 id, uint256 value)
        external
    {
        bytes32 t = TRANSFER_SINGLE_TOPIC;
        bytes32 o = _word(operator);
        bytes32 f = _word(from);
        bytes memory toIdValue = abi.encode(to, id, value);
        bytes memory all = abi.encode(from, to, id, value);
        bytes memory idOnly = abi.encode(id);
        bytes32 d = _word(to);
        assembly {
            log3(add(toIdValue, 0x20), mload(toIdValue), t, o, f)
            log2(add(all, 0x20), mload(all), t, o)
            log4(add(idOnly, 0x20), mload(idOnly), t, o, f, d)
            log4(0, 0, t, o, f, d)
        }
    }

    /// Four TransferBatch-topic logs that must all be skipped, in this order:
    ///  0. 4 topics, ids [1, 2] but values [1]                        (unequal lengths)
    ///  1. 4 topics, abi.encode([1, 2], [3, 4]) without its last word (truncated)
    ///  2. 4 topics, the ids offset points past the data              (bad offset)
    ///  3. 3 topics [T, operator, from], valid abi.encode([1], [1])   (too few topics)
    function emitMalformedBatches(address operator, address from, address to) external {
        bytes32 t = TRANSFER_BATCH_TOPIC;
        bytes32 o = _word(operator);
        bytes32 f = _word(from);
        bytes32 d = _word(to);

        uint256[] memory two = new uint256[](2);
        two[0] = 1;
        two[1] = 2;
        uint256[] memory one = new uint256[](1);
        one[0] = 1;
        emit TransferBatch(operator, from, to, two, one);

        uint256[] memory threeFour = new uint256[](2);
        threeFour[0] = 3;
        threeFour[1] = 4;
        bytes memory truncated = abi.encode(two, threeFour);
        assembly {
            mstore(truncated, sub(mload(truncated), 0x20))
        }

        bytes memory badOffset = abi.encode(uint256(0x1000), uint256(0x40), uint256(0));

        bytes memory valid = abi.encode(one, one);
        assembly {
            log4(add(truncated, 0x20), mload(truncated), t, o, f, d)
            log4(add(badOffset, 0x20), mload(badOffset), t, o, f, d)
            log3(add(valid, 0x20), mload(valid), t, o, f)
        }
    }

    /// One raw log with 0 to 4 topics, for shapes the functions above lack.
    function emitRaw(bytes32[] calldata topics, bytes calldata data) external {
        bytes memory copy = data;
        uint256 n = topics.length;
        require(n <= 4, "at most 4 topics");
        bytes32[4] memory t;
        for (uint256 i = 0; i < n; i++) {
            t[i] = topics[i];
        }
        assembly {
            let ptr := add(copy, 0x20)
            let len := mload(copy)
            switch n
            case 0 { log0(ptr, len) }
            case 1 { log1(ptr, len, mload(t)) }
            case 2 { log2(ptr, len, mload(t), mload(add(t, 0x20))) }
            case 3 { log3(ptr, len, mload(t), mload(add(t, 0x20)), mload(add(t, 0x40))) }
            default { log4(ptr, len, mload(t), mload(add(t, 0x20)), mload(add(t, 0x40)), mload(add(t, 0x60))) }
        }
    }

    function _word(address a) private pure returns (bytes32) {
        return bytes32(uint256(uint160(a)));
    }
}
