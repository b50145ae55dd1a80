"""The `passage` command."""
