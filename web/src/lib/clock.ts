/**
 * The chain's clock as the API reports it (`GET /health`: latest block number and timestamp). Deadlines and
 * validity windows are computed from it, never from the browser's clock: on the dev chain the clock runs
 * ahead of wall time once the demo has moved it, and a wall-clock deadline would already be past.
 */
import { getJSON } from "../api/client";
import { routes } from "../api/routes";
import type { Health } from "../api/types";

export interface ChainClock {
  chainId: number;
  blockNumber: number;
  /** the latest block's timestamp, unix seconds */
  timestamp: number;
}

export async function chainClock(): Promise<ChainClock> {
  const h = await getJSON<Health>(routes.health());
  return { chainId: h.chain_id, blockNumber: h.latest_block, timestamp: h.latest_block_time };
}

/** A signature's deadline: `validity` seconds after the latest block's timestamp. */
export const deadlineFrom = (clock: ChainClock, validity: number): number => clock.timestamp + validity;
