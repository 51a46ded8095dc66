/**
 * The Lorenz curve and Gini coefficient of an epoch's rewards as the auditor view draws them (the server
 * computes them: `GET /v1/epochs/{n}/distribution`, backend/rewards/distribution.py).
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
