/**
 * Check an allocation file's OpenZeppelin `standard-v1` tree dump in the browser, as
 * `StandardMerkleTree.load(dump).validate()` does: every leaf is
 * keccak256(keccak256(abi.encode(address, uint256))) of its value, every inner node is the keccak256 of its
 * two children sorted, and the root is compared with the root published on chain.
 */
import { concat, encodeAbiParameters, keccak256, type Hex } from "viem";

export interface TreeDump {
  format: string;
  leafEncoding: string[];
  tree: Hex[];
  values: { treeIndex: number; value: [string, string] }[];
}

export interface TreeCheck {
  ok: boolean;
  root: Hex | null;
  leaves: number;
  total: bigint;
  problem: string | null;
}

export const leafHash = (account: string, amount: string | bigint): Hex =>
  keccak256(
    keccak256(encodeAbiParameters([{ type: "address" }, { type: "uint256" }], [account as Hex, BigInt(amount)])),
  );

const hashPair = (a: Hex, b: Hex): Hex => keccak256(concat(a.toLowerCase() < b.toLowerCase() ? [a, b] : [b, a]));

export function checkTree(dump: TreeDump, expectedRoot: string): TreeCheck {
  const fail = (problem: string): TreeCheck => ({ ok: false, root: dump.tree?.[0] ?? null, leaves: 0, total: 0n, problem });
  if (dump.format !== "standard-v1" || dump.leafEncoding.join(",") !== "address,uint256") {
    return fail(`unknown tree format ${dump.format} (${dump.leafEncoding})`);
  }
  const t = dump.tree.map((h) => h.toLowerCase() as Hex);
  const n = t.length;
  if (n === 0) return fail("the tree is empty");
  for (let i = n - 1; i >= 0; i -= 1) {
    const left = 2 * i + 1;
    if (left >= n) continue; // a leaf
    if (left + 1 >= n) return fail(`node ${i} has one child: not a complete tree`);
    if (t[i] !== hashPair(t[left], t[left + 1])) return fail(`node ${i} is not the hash of its children`);
  }
  let total = 0n;
  for (const { treeIndex, value } of dump.values) {
    if (2 * treeIndex + 1 < n) return fail(`value at ${treeIndex} is not on a leaf`);
    if (t[treeIndex] !== leafHash(value[0], value[1])) return fail(`the leaf of ${value[0]} does not hash to its value`);
    total += BigInt(value[1]);
  }
  if (t[0] !== expectedRoot.toLowerCase()) {
    return { ok: false, root: t[0], leaves: dump.values.length, total, problem: `the tree's root ${t[0]} is not the root on chain ${expectedRoot}` };
  }
  return { ok: true, root: t[0], leaves: dump.values.length, total, problem: null };
}
