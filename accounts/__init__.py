"""Operator and resident accounts: argon2id password hashes, API keys, the account store."""
