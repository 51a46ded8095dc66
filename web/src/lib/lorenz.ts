/**
 * The Lorenz curve and Gini coefficient of an epoch's rewards, from the allocation file's per-account
 * amounts (wei, exact BigInt arithmetic until the final division).
 */

export interface Lorenz {
  /** cumulative share of recipients, 0..1, starting at 0 */
  x: number[];
  /** cumulative share of rewards, 0..1, starting at 0 */
  y: number[];
  gini: number;
  recipients: number;
  total: bigint;
}

/** Shares as a float from a BigInt ratio (exact to ~1e-15 whatever the magnitudes). */
function ratio(num: bigint, den: bigint): number {
  if (den === 0n) return 0;
  const SCALE = 10n ** 15n;
  return Number((num * SCALE) / den) / 1e15;
}

export function lorenz(amounts: Iterable<string | bigint>): Lorenz {
  const values = [...amounts].map((a) => BigInt(a)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const n = values.length;
  const total = values.reduce((s, v) => s + v, 0n);
  const x = [0];
  const y = [0];
  let running = 0n;
  // G = sum_i (2i - n - 1) x_i / (n * total), i = 1..n over amounts sorted ascending
  let weighted = 0n;
  values.forEach((v, i) => {
    running += v;
    x.push((i + 1) / n);
    y.push(ratio(running, total));
    weighted += BigInt(2 * (i + 1) - n - 1) * v;
  });
  const gini = n === 0 || total === 0n ? 0 : ratio(weighted, BigInt(n) * total);
  return { x, y, gini, recipients: n, total };
}
