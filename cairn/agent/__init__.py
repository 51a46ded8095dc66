"""What an AI agent imports to pay Cairn: the x402 `batch-settlement` scheme plugin for the official x402
client (`channel_client`). Depends only on `cairn.core` and the x402 SDK, never on the backend."""
