/**
 * SHA-256 of a file, streamed (a large file is never held in memory whole; Web Crypto's `digest` would need
 * it all at once), with progress. The content hash of a dataset is the SHA-256 of its bytes
 * (cairn/core/content.py), what `sha256sum` prints.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";

export interface HashProgress {
  done: number;
  total: number;
}

export async function sha256File(
  file: Blob,
  onProgress: (p: HashProgress) => void,
  signal?: AbortSignal,
): Promise<`0x${string}`> {
  const hasher = sha256.create();
  const reader = file.stream().getReader();
  let done = 0;
  let lastReport = 0;
  onProgress({ done, total: file.size });
  for (;;) {
    if (signal?.aborted) {
      await reader.cancel();
      throw new DOMException("hashing cancelled", "AbortError");
    }
    const { value, done: finished } = await reader.read();
    if (finished) break;
    hasher.update(value);
    done += value.byteLength;
    const now = performance.now();
    if (now - lastReport > 50) {
      lastReport = now;
      onProgress({ done, total: file.size });
      await new Promise((r) => setTimeout(r, 0)); // let the page paint the progress
    }
  }
  onProgress({ done, total: file.size });
  return `0x${bytesToHex(hasher.digest())}`;
}
