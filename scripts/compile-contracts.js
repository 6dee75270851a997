#!/usr/bin/env node
// Compiles the test contracts (crates/ethpipe-testkit/contracts/*.sol) with the
// solc-js packages that scripts/ensure-node-tools.sh installed, and writes one
// artifact per exported contract: OUT_DIR/<Name>.json with the ABI, creation
// bytecode, runtime bytecode, method identifiers, and the selectors and token
// flags that ethereum-etl's bytecode check gives for the runtime code.
//
// usage: node scripts/compile-contracts.js CONTRACTS_DIR OUT_DIR NODE_MODULES_DIR
//
// The compiler is chosen from each file's `pragma solidity ^0.X.Y`: the
// installed package `solc-0.X.*`. A contract is exported when its file has a
// line `// detect: <Name> <erc20|erc721|erc20,erc721|none>`; the script fails
// unless the detection result is exactly that, so a compiler change that
// breaks (or fixes) detection cannot go unnoticed.

'use strict';

const fs = require('fs');
const path = require('path');

const ERC20 = ['0x18160ddd', '0x70a08231', '0xa9059cbb', '0x23b872dd', '0x095ea7b3', '0xdd62ed3e'];

function fail(message) {
  process.stderr.write(`compile-contracts: ${message}\n`);
  process.exit(1);
}

// ethereum-etl's selector extraction (docs/rpc-semantics.md rule 19): sweep
// the opcodes, stop at the first JUMPDEST, keep complete PUSH4 operands.
function functionSighashes(hexCode) {
  const code = Buffer.from(hexCode.replace(/^0x/, ''), 'hex');
  const found = new Set();
  let i = 0;
  while (i < code.length) {
    const op = code[i];
    if (op === 0x5b) break;
    if (op >= 0x60 && op <= 0x7f) {
      const n = op - 0x5f;
      if (op === 0x63 && i + 1 + n <= code.length) {
        found.add('0x' + code.subarray(i + 1, i + 1 + n).toString('hex'));
      }
      i += 1 + n;
    } else {
      i += 1;
    }
  }
  return [...found].sort();
}

function detect(sighashes) {
  const has = (s) => sighashes.includes(s);
  const erc20 = ERC20.every(has);
  const erc721 = has('0x70a08231') && has('0x6352211e') &&
    (has('0xa9059cbb') || has('0x23b872dd')) && has('0x095ea7b3');
  return { erc20, erc721 };
}

function detectionLabel({ erc20, erc721 }) {
  const parts = [];
  if (erc20) parts.push('erc20');
  if (erc721) parts.push('erc721');
  return parts.length ? parts.join(',') : 'none';
}

function loadCompilers(nodeModules) {
  const compilers = {};
  for (const entry of fs.readdirSync(nodeModules)) {
    const m = /^solc-(\d+)\.(\d+)\.(\d+)$/.exec(entry);
    if (!m) continue;
    compilers[`${m[1]}.${m[2]}`] = { dir: path.join(nodeModules, entry), version: `${m[1]}.${m[2]}.${m[3]}` };
  }
  return compilers;
}

function compile(solc, fileName, source) {
  const input = {
    language: 'Solidity',
    sources: { [fileName]: { content: source } },
    settings: {
      optimizer: { enabled: true, runs: 200 },
      outputSelection: {
        '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object', 'evm.methodIdentifiers'] },
      },
    },
  };
  // solc-js 0.4 keeps the legacy compile(); its standard-JSON entry point is
  // compileStandardWrapper. Newer solc-js take standard JSON in compile().
  const run = typeof solc.compileStandardWrapper === 'function' ? solc.compileStandardWrapper : solc.compile;
  const output = JSON.parse(run(JSON.stringify(input)));
  const errors = (output.errors || []).filter((e) => e.severity === 'error');
  if (errors.length) {
    fail(`${fileName}:\n${errors.map((e) => e.formattedMessage || e.message).join('\n')}`);
  }
  return output.contracts[fileName] || {};
}

function main() {
  const [contractsDir, outDir, nodeModules] = process.argv.slice(2);
  if (!contractsDir || !outDir || !nodeModules) {
    fail('usage: compile-contracts.js CONTRACTS_DIR OUT_DIR NODE_MODULES_DIR');
  }
  const compilers = loadCompilers(nodeModules);
  fs.mkdirSync(outDir, { recursive: true });
  const files = fs.readdirSync(contractsDir).filter((f) => f.endsWith('.sol')).sort();
  const written = [];
  for (const fileName of files) {
    const source = fs.readFileSync(path.join(contractsDir, fileName), 'utf8');
    const pragma = /pragma\s+solidity\s+\^?(\d+)\.(\d+)\./.exec(source);
    if (!pragma) fail(`${fileName}: no \`pragma solidity ^0.X.Y\` line`);
    const compiler = compilers[`${pragma[1]}.${pragma[2]}`];
    if (!compiler) fail(`${fileName}: no solc ${pragma[1]}.${pragma[2]}.x installed in ${nodeModules}`);
    const expected = {};
    for (const m of source.matchAll(/^\/\/ detect: (\w+) (\S+)\s*$/gm)) expected[m[1]] = m[2];
    if (!Object.keys(expected).length) fail(`${fileName}: no \`// detect: <Name> <flags>\` line`);

    const solc = require(compiler.dir);
    const contracts = compile(solc, fileName, source);
    for (const [name, want] of Object.entries(expected)) {
      const c = contracts[name];
      if (!c || !c.evm.bytecode.object) fail(`${fileName}: contract ${name} not found or abstract`);
      const runtime = '0x' + c.evm.deployedBytecode.object;
      const sighashes = functionSighashes(runtime);
      const flags = detect(sighashes);
      if (detectionLabel(flags) !== want) {
        fail(`${fileName}: ${name} is detected as ${detectionLabel(flags)}, the file says ${want} ` +
          `(selectors before the first JUMPDEST: ${sighashes.join(' ') || 'none'})`);
      }
      const artifact = {
        contractName: name,
        sourceFile: fileName,
        compiler: compiler.version,
        abi: c.abi,
        bytecode: '0x' + c.evm.bytecode.object,
        deployedBytecode: runtime,
        methodIdentifiers: c.evm.methodIdentifiers,
        functionSighashes: sighashes,
        isErc20: flags.erc20,
        isErc721: flags.erc721,
      };
      fs.writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify(artifact, null, 2) + '\n');
      written.push(`${name} (solc ${compiler.version}, ${detectionLabel(flags)})`);
    }
  }
  process.stdout.write(`compiled ${written.length} contracts into ${outDir}:\n  ${written.join('\n  ')}\n`);
}

main();
