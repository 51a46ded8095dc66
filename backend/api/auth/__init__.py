"""Who is asking: Sign-In with Ethereum sessions for people, scoped API keys for operators.

`eip4361` parses and builds the messages, `siwe` verifies them, `store` owns the three tables (nonces,
sessions, API keys), `deps` gives routes the `CurrentAccount` and `OperatorScope(...)` dependencies."""
