"""The auditor: verify epochs and contracts from the chain alone (`cairn audit`), reports, the watchtower."""
