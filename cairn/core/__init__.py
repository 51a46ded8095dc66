"""The leaf core: errors, settings, deployment, database engines, chain access, Merkle, EIP-712, policy and
the
event catalogue. It imports nothing of `indexer`, `backend` or `cairn.cli`."""
