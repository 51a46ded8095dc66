/** Formatting: exact token amounts (BigInt, 18 decimals), short hashes, durations. */

const UNIT = 10n ** 18n;

export function tokens(wei: string | null | undefined): string {
  if (wei === null || wei === undefined) return "—";
  const v = BigInt(wei);
  const frac = (v % UNIT).toString().padStart(18, "0").replace(/0+$/, "");
  return frac ? `${v / UNIT}.${frac}` : `${v / UNIT}`;
}

export const withWei = (wei: string): string => `${tokens(wei)} (${wei} wei)`;

export const short = (h: string | null | undefined): string =>
  h && h.length > 14 ? `${h.slice(0, 8)}…${h.slice(-6)}` : (h ?? "—");

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

/** A chain timestamp (unix seconds) as an ISO date in UTC, without milliseconds. */
export const chainDate = (ts: number): string => new Date(ts * 1000).toISOString().replace(".000Z", "Z");
