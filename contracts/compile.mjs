#!/usr/bin/env node
// Compiles every contract under contracts/src with solc-js (standard JSON) and writes the build
// artifacts to contracts/build. Output is deterministic (sorted keys, embedded sources), so CI can
// run `node contracts/compile.mjs --check` and fail when the committed artifacts are stale.
//
//   node contracts/compile.mjs          write contracts/build/*
//   node contracts/compile.mjs --check  recompile in memory; exit 1 if contracts/build differs
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const solc = require("solc");

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const SRC_DIR = "contracts/src";
const BUILD_DIR = path.join(ROOT, "contracts", "build");
const EVM_VERSION = "cancun";
const OPTIMIZER_RUNS = 10000; // claim() is the hot path: favour runtime gas over deploy size
const REMAPPINGS = ["@openzeppelin/=node_modules/@openzeppelin/"];

function listSources(dir) {
  const out = [];
  for (const entry of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    const rel = `${dir}/${entry.name}`;
    if (entry.isDirectory()) out.push(...listSources(rel));
    else if (entry.name.endsWith(".sol")) out.push(rel);
  }
  return out.sort();
}

function readSource(unitName) {
  // Source unit names are repository-relative paths; refuse anything that escapes the repo.
  const full = path.resolve(ROOT, unitName);
  if (!full.startsWith(ROOT + path.sep)) throw new Error(`import outside the repository: ${unitName}`);
  return fs.readFileSync(full, "utf8");
}

function settings() {
  return {
    evmVersion: EVM_VERSION,
    optimizer: { enabled: true, runs: OPTIMIZER_RUNS },
    remappings: REMAPPINGS,
    metadata: { bytecodeHash: "ipfs", appendCBOR: true },
    outputSelection: {
      "*": {
        "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "storageLayout"],
      },
    },
  };
}

function run(input, withImports, report) {
  const loaded = new Map();
  const findImports = (unitName) => {
    try {
      const contents = readSource(unitName);
      loaded.set(unitName, contents);
      return { contents };
    } catch (err) {
      return { error: String(err.message || err) };
    }
  };
  const raw = withImports
    ? solc.compile(JSON.stringify(input), { import: findImports })
    : solc.compile(JSON.stringify(input));
  const output = JSON.parse(raw);
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  for (const e of output.errors || []) {
    // Warnings about OpenZeppelin's own code (e.g. its transient-storage notice) are not ours.
    const ours = !e.sourceLocation || !e.sourceLocation.file.startsWith("node_modules/");
    if (e.severity === "error" || (report && ours)) process.stderr.write(`${e.formattedMessage || e.message}\n`);
  }
  if (errors.length) throw new Error(`solc reported ${errors.length} error(s)`);
  return { output, loaded };
}

function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    const out = {};
    for (const key of Object.keys(value).sort()) out[key] = sortKeys(value[key]);
    return out;
  }
  return value;
}

const stable = (value) => `${JSON.stringify(sortKeys(value), null, 2)}\n`;

function build() {
  const own = listSources(SRC_DIR);
  const first = { language: "Solidity", sources: {}, settings: settings() };
  for (const unit of own) first.sources[unit] = { content: readSource(unit) };
  const { loaded } = run(first, true, false);

  // Second pass: every source embedded, no import callback. This is the exact, self-contained
  // compiler input (usable as-is for block-explorer verification).
  const input = { language: "Solidity", sources: {}, settings: settings() };
  const allUnits = [...new Set([...own, ...loaded.keys()])].sort();
  for (const unit of allUnits) input.sources[unit] = { content: readSource(unit) };
  const { output } = run(input, false, true);

  const files = new Map();
  for (const unit of own) {
    for (const [name, c] of Object.entries(output.contracts[unit] || {})) {
      if (!c.evm.bytecode.object) continue; // interfaces and abstract contracts
      const file = `${name}.json`;
      if (files.has(file)) throw new Error(`duplicate contract name ${name}`);
      files.set(
        file,
        stable({
          contractName: name,
          sourceName: unit,
          abi: c.abi,
          bytecode: `0x${c.evm.bytecode.object}`,
          deployedBytecode: `0x${c.evm.deployedBytecode.object}`,
          storageLayout: c.storageLayout,
        }),
      );
    }
  }
  files.set("input.json", stable(input));
  files.set("solc-version.txt", `${solc.version()}\n`);
  return files;
}

function main() {
  const check = process.argv.includes("--check");
  const files = build();
  const existing = fs.existsSync(BUILD_DIR)
    ? fs.readdirSync(BUILD_DIR).filter((f) => f.endsWith(".json") || f.endsWith(".txt"))
    : [];
  if (check) {
    const problems = [];
    for (const [file, text] of files) {
      const target = path.join(BUILD_DIR, file);
      if (!fs.existsSync(target)) problems.push(`missing: contracts/build/${file}`);
      else if (fs.readFileSync(target, "utf8") !== text) problems.push(`differs: contracts/build/${file}`);
    }
    for (const file of existing) if (!files.has(file)) problems.push(`stale: contracts/build/${file}`);
    if (problems.length) {
      process.stderr.write(`${problems.join("\n")}\nrun: node contracts/compile.mjs\n`);
      process.exit(1);
    }
    process.stdout.write(`contracts/build is up to date (${files.size} files, solc ${solc.version()})\n`);
    return;
  }
  fs.mkdirSync(BUILD_DIR, { recursive: true });
  for (const file of existing) if (!files.has(file)) fs.rmSync(path.join(BUILD_DIR, file));
  for (const [file, text] of files) fs.writeFileSync(path.join(BUILD_DIR, file), text);
  process.stdout.write(`wrote ${files.size} files to contracts/build (solc ${solc.version()})\n`);
}

main();
