"""The rewards engine: policy-driven allocation, Merkle publication, epoch lifecycle and the outbox."""
