pragma solidity ^0.4.24;

// An ERC-721 that ethereum-etl's bytecode check detects: compiled with solc
// 0.4.26 so that balanceOf, ownerOf, transferFrom and approve are PUSH4
// operands before the first JUMPDEST (see Erc20Tokens.sol). It has no
// totalSupply() and no allowance(), so it is not an ERC-20.
//
// detect: Erc721Token erc721

contract Erc721Token {
    string public name;
    string public symbol;
    mapping(uint256 => address) public ownerOf;
    mapping(address => uint256) public balanceOf;
    mapping(uint256 => address) public getApproved;
    mapping(address => mapping(address => bool)) public isApprovedForAll;

    // All three parameters indexed: a Transfer log has 4 topics and no data.
    event Transfer(address indexed from, address indexed to, uint256 indexed tokenId);
    event Approval(address indexed owner, address indexed approved, uint256 indexed tokenId);
    event ApprovalForAll(address indexed owner, address indexed operator, bool approved);

    constructor(string _name, string _symbol) public {
        name = _name;
        symbol = _symbol;
    }

    /// Anyone may mint a token id that does not exist yet.
    function mint(address to, uint256 tokenId) public {
        require(to != address(0));
        require(ownerOf[tokenId] == address(0));
        ownerOf[tokenId] = to;
        balanceOf[to] += 1;
        emit Transfer(address(0), to, tokenId);
    }

    function approve(address approved, uint256 tokenId) public {
        address owner = ownerOf[tokenId];
        require(msg.sender == owner || isApprovedForAll[owner][msg.sender]);
        getApproved[tokenId] = approved;
        emit Approval(owner, approved, tokenId);
    }

    function setApprovalForAll(address operator, bool approved) public {
        isApprovedForAll[msg.sender][operator] = approved;
        emit ApprovalForAll(msg.sender, operator, approved);
    }

    function transferFrom(address from, address to, uint256 tokenId) public {
        require(to != address(0));
        require(ownerOf[tokenId] == from);
        require(
            msg.sender == from
                || getApproved[tokenId] == msg.sender
                || isApprovedForAll[from][msg.sender]
        );
        delete getApproved[tokenId];
        ownerOf[tokenId] = to;
        balanceOf[from] -= 1;
        balanceOf[to] += 1;
        emit Transfer(from, to, tokenId);
    }
}
