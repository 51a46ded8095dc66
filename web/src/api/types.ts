/** The shapes of the API answers the app reads (backend/api/schemas.py); wei amounts are decimal strings. */

export interface Health {
  status: string;
  version: string;
  chain_id: number;
  rpc_url: string;
  latest_block: number;
  latest_block_time: number;
  latest_indexed_block: number | null;
  indexer_lag: number | null;
  database: string;
  contracts: Record<string, string>;
  epoch: { genesis: number; length: number };
  /** the deployment's first block: its contracts' logs start there */
  start_block: number;
}

export interface Score {
  validators: number;
  median: number | null;
}

export interface Dataset {
  kind: "dataset";
  content_hash: string;
  owner: string;
  size: number;
  license_id: number;
  metadata_hash: string;
  uri: string;
  block_number: number;
  block_time: number;
  tx_hash: string;
  withdrawn: boolean;
  score?: Score | null;
}

export interface Compute {
  kind: "compute";
  contribution_id: string;
  owner: string;
  model_id: string;
  job_id: string;
  work_units: number;
  block_number: number;
  withdrawn: boolean;
}

export interface DatasetPage {
  items: Dataset[];
  next_cursor: string | null;
}

export interface Account {
  address: string;
  dataset_count: number;
  compute_count: number;
  datasets: Dataset[];
  compute: Compute[];
  rewards: {
    cumulative: string;
    claimed: string;
    claimable: string;
    epoch: number | null;
    root: string | null;
    claimable_now: boolean;
  };
}

export interface Contribution {
  id: string;
  kind: string;
  attestations: { validator: string; score: number }[];
  score: Score;
}

export interface EpochSummary {
  epoch: number;
  status: string;
  root: string | null;
  policy_hash: string | null;
  total_cumulative: string | null;
  valid_at: number | null;
  allocation_uri: string | null;
  funded: Record<string, string>;
  pool: string;
}

export interface EpochList {
  current_epoch: number;
  epochs: EpochSummary[];
}

export interface Proof {
  claim: { account: string; cumulativeAmount: string; proof: string[] };
}

/** The allocation file (`cairn-allocation-v1`, backend/rewards/publication.py), the fields the app reads. */
export interface Distribution {
  epoch: number;
  root: string;
  allocation_file: string;
  leaves: number;
  total: string;
  gini: number;
  /** [x, y]: cumulative share of recipients and of rewards */
  lorenz: [number, number][];
}

export interface AllocationFile {
  format: string;
  epoch: number;
  chain_id: number;
  root: string;
  policy_hash: string;
  epoch_total: string;
  total_cumulative: string;
  epoch_amounts: Record<string, string>;
  tree: import("../lib/merkle").TreeDump;
}

export interface TypedData {
  domain: Record<string, unknown>;
  types: Record<string, { name: string; type: string }[]>;
  primaryType: string;
  message: Record<string, unknown> & {
    owner: string;
    nonce: number | string;
    deadline: number | string;
    dataset: {
      contentHash: string;
      size: number;
      licenseId: number;
      metadataHash: string;
      uri: string;
    };
  };
}

export interface RelayReceipt {
  relay_id: string;
  tx_hash: string;
  status: string; // pending, mined, reverted, replaced
  phase: string; // commit, reveal
  commit_tx_hash: string | null;
  block_number: number | null;
  content_hash: string;
  duplicate: boolean;
  failure?: string | null;
}

/** `/v1/me/contributions` (backend/api/auth/schemas.py MyContributions). */
export interface AttestationStatus {
  attestations: { validator: string; score: number }[];
  score: Score;
  quorum: number;
  quorum_met: boolean;
}

export type MyContribution =
  | (Dataset & { status: AttestationStatus })
  | (Compute & { status: AttestationStatus });

/** A keyset page, newest first: pass `next_cursor` back as `cursor` for the next one. */
export interface MyContributions {
  address: string;
  dataset_count: number;
  compute_count: number;
  items: MyContribution[];
  next_cursor: string | null;
}

/** The proof `GET /v1/epochs/{n}/proofs/{address}` serves (backend/api/schemas.py Proof). */
export interface EpochProof {
  epoch: number;
  account: string;
  root: string;
  cumulative_amount: string;
  proof: `0x${string}`[];
  claimed: string;
  claimable: string;
  valid_at: number;
  claimable_now: boolean;
}

/** `/v1/me/rewards` (MyRewards). */
export interface MyRewards {
  address: string;
  epochs: { epoch: number; root: string; cumulative: string; amount: string; claimable_now: boolean }[];
  cumulative: string;
  claimed: string;
  claimable: string;
  claim: EpochProof | null;
}

/** `PUT /v1/content/{hash}` (ContentStored). */
export interface ContentStored {
  content_hash: string;
  size: number;
  created: boolean;
  admitted_by: string;
  url: string;
}

/** `GET /v1/audit/latest` (format `cairn-audit-v1`, backend/audit/report.py), the fields the app reads. */
export interface AuditReport {
  format: string;
  ok: boolean;
  generated_at: string;
  head_block: number | null;
  epochs: {
    epoch: number;
    ok: boolean;
    status: string;
    root: string | null;
    leaves: number | null;
    problems: string[];
  }[];
  conservation: { ok: boolean; problems: string[] };
  contracts: { name: string; ok: boolean; match: string; address: string; problems: string[] }[];
}

/** `GET /v1/payments?payer=` (backend/api/routers/payments.py). */
export interface PaymentList {
  payments: {
    id: number;
    scheme: string;
    payer: string;
    nonce: string;
    amount: string;
    model_id: string;
    resource: string;
    status: string; // accepted, served, settling, settled, failed, void
    tx_hash: string | null;
    reason: string | null;
    created_at: number;
    updated_at: number;
  }[];
  exposure?: {
    payer: string;
    unsettled: string;
    limit: string;
    failed: number;
    failed_amount: string;
    refused: boolean;
  };
}

/** One channel the gateway has served: `GET /v1/channels?payer=` (ChannelPage), backend/api/routers/payments.py. */
export interface ServedChannel {
  channel_id: string;
  router: string;
  payer: string;
  payer_authorizer: string;
  receiver_authorizer: string;
  token: string;
  withdraw_delay: number;
  salt: string;
  /** the latest accepted voucher (off chain, held by the gateway); null before the first */
  voucher: { maxClaimableAmount: string; signature: string } | null;
  charged: string; // cumulative, wei
  requests: number;
  updated_at: number;
  usage: { model_id: string; charged: string; requests: number; claimed: string; claimed_requests: number }[];
  claimed: string; // cumulative claimed on chain by the gateway
  claiming: string | null; // a claim transaction in flight
}

export interface ChannelPage {
  payer: string;
  channels: ServedChannel[];
  next_cursor: string | null;
}

/** `/v1/me/claims` (MyClaims): newest first. */
export interface MyClaims {
  address: string;
  claims: {
    amount: string;
    cumulative_amount: string;
    caller: string;
    block_number: number;
    block_time: number;
    tx_hash: string;
  }[];
}

/** `GET /v1/validators/{address}/queue` (QueuePage). */
export interface QueuePage {
  validator: string;
  items: {
    contribution_id: string;
    kind: string;
    owner: string;
    model_id: string | null;
    size: number | null;
    work_units: number | null;
    uri: string | null;
    attested_by: number;
    content_available: boolean;
    content_url: string | null;
    block_number: number;
    block_time: number;
  }[];
  next_cursor: string | null;
}
