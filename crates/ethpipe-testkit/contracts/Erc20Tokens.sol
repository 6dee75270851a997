pragma solidity ^0.4.24;

// ERC-20 test tokens that ethereum-etl's bytecode check DOES detect.
//
// ethereum-etl reads function selectors only from the PUSH4 operands before
// the first JUMPDEST of the runtime code (docs/rpc-semantics.md, rule 19).
// solc 0.4.x puts one `DUP1 PUSH4 <selector> EQ PUSH2 <tag> JUMPI` per function
// in a straight line at the start of the code, with each function's CALLVALUE
// check after its own JUMPDEST, so every selector lands in that first block.
// That is why these contracts are compiled with solc 0.4.26 (the compile
// script picks the compiler from the pragma) and checked after compiling.
//
// detect: StandardToken erc20
// detect: Bytes32Token erc20
// detect: NoMetadataToken erc20
// detect: NulNameToken erc20
// detect: BadUtf8SymbolToken erc20
// detect: SelfDestructToken erc20
// detect: ScriptedMetadataToken erc20

/// Balances, allowances, the six ERC-20 functions, and test helpers any
/// caller may use: mint, burn and batchTransfer.
contract Erc20Core {
    uint256 internal supply;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    function totalSupply() public view returns (uint256) {
        return supply;
    }

    function transfer(address to, uint256 value) public returns (bool) {
        move(msg.sender, to, value);
        return true;
    }

    function transferFrom(address from, address to, uint256 value) public returns (bool) {
        require(allowance[from][msg.sender] >= value);
        allowance[from][msg.sender] -= value;
        move(from, to, value);
        return true;
    }

    function approve(address spender, uint256 value) public returns (bool) {
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    /// Anyone may mint: this is a test token.
    function mint(address to, uint256 value) public {
        create(to, value);
    }

    function burn(uint256 value) public {
        require(balanceOf[msg.sender] >= value);
        balanceOf[msg.sender] -= value;
        supply -= value;
        emit Transfer(msg.sender, address(0), value);
    }

    /// One Transfer log per recipient, all in one transaction.
    function batchTransfer(address[] to, uint256[] values) public returns (bool) {
        require(to.length == values.length);
        for (uint256 i = 0; i < to.length; i++) {
            move(msg.sender, to[i], values[i]);
        }
        return true;
    }

    function move(address from, address to, uint256 value) internal {
        require(balanceOf[from] >= value);
        balanceOf[from] -= value;
        balanceOf[to] += value;
        emit Transfer(from, to, value);
    }

    function create(address to, uint256 value) internal {
        require(supply + value >= supply);
        supply += value;
        balanceOf[to] += value;
        emit Transfer(address(0), to, value);
    }
}

/// The standard token: string name and symbol, uint8 decimals, and the
/// initial supply minted to the deployer (no Transfer log when it is 0).
/// Decimals 0 or 6 and a supply of 2^256-1 are constructor arguments.
contract StandardToken is Erc20Core {
    string public name;
    string public symbol;
    uint8 public decimals;

    constructor(string _name, string _symbol, uint8 _decimals, uint256 _supply) public {
        name = _name;
        symbol = _symbol;
        decimals = _decimals;
        if (_supply > 0) {
            create(msg.sender, _supply);
        }
    }
}

/// MKR style: name() and symbol() return bytes32, not string.
contract Bytes32Token is Erc20Core {
    bytes32 public name;
    bytes32 public symbol;
    uint8 public decimals;

    constructor(bytes32 _name, bytes32 _symbol, uint8 _decimals, uint256 _supply) public {
        name = _name;
        symbol = _symbol;
        decimals = _decimals;
        if (_supply > 0) {
            create(msg.sender, _supply);
        }
    }
}

/// No name(), symbol() or decimals() (nor their upper-case forms): every
/// metadata call reverts. totalSupply() stays, it is one of the six selectors.
contract NoMetadataToken is Erc20Core {
    constructor(uint256 _supply) public {
        if (_supply > 0) {
            create(msg.sender, _supply);
        }
    }
}

/// name() returns the 6-byte string "E\0T\0H\0"; ethpipe must store "ETH".
contract NulNameToken is StandardToken {
    constructor() StandardToken("E\x00T\x00H\x00", "NUL", 18, 1000) public {}
}

/// symbol() returns a well-formed ABI string whose bytes ff fe 41 42 are not
/// UTF-8; name() is "ok". ethereum-etl then takes the bytes32 reading of the
/// offset word, so symbol becomes " " (rule 27).
contract BadUtf8SymbolToken is StandardToken {
    constructor() StandardToken("ok", "", 18, 1000) public {
        bytes memory raw = hex"fffe4142";
        symbol = string(raw);
    }
}

/// A standard token with kill(): used to self-destruct a token in the block
/// (or, through TokenFactory.deployAndDestroy, the transaction) that made it.
contract SelfDestructToken is StandardToken {
    constructor(string _name, string _symbol, uint8 _decimals, uint256 _supply)
        StandardToken(_name, _symbol, _decimals, _supply) public {}

    function kill() public {
        selfdestruct(msg.sender);
    }
}

/// A detectable ERC-20 whose metadata answers are whatever a test scripts:
/// `script(selector, mode, reply)` makes any call with that selector (name(),
/// SYMBOL(), decimals(), totalSupply(), ...) return `reply` as raw bytes
/// (mode 1) or revert with `reply` as revert data (mode 2). Mode 0 restores
/// the default: totalSupply() returns the supply, anything else reverts with
/// no data. The raw bytes are not ABI-checked, so every row of the golden
/// metadata table in docs/rpc-semantics.md can be played by a real node.
contract ScriptedMetadataToken is Erc20Core {
    uint8 constant DEFAULT = 0;
    uint8 constant RETURN = 1;
    uint8 constant REVERT = 2;

    mapping(bytes4 => uint8) internal modes;
    mapping(bytes4 => bytes) internal replies;

    constructor(uint256 _supply) public {
        if (_supply > 0) {
            create(msg.sender, _supply);
        }
    }

    function script(bytes4 selector, uint8 mode, bytes reply) public {
        modes[selector] = mode;
        replies[selector] = reply;
    }

    function totalSupply() public view returns (uint256) {
        if (modes[msg.sig] != DEFAULT) {
            answer();
        }
        return supply;
    }

    function () public payable {
        answer();
    }

    function answer() internal view {
        uint8 mode = modes[msg.sig];
        bytes memory reply = replies[msg.sig];
        if (mode == RETURN) {
            assembly {
                return(add(reply, 32), mload(reply))
            }
        }
        assembly {
            revert(add(reply, 32), mload(reply))
        }
    }
}
