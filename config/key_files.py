"""Site secrets kept as files under data_dir/keys: created once (mode 0600), then reused."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path


def key_file(path: Path, create: Callable[[], bytes] | None = None) -> bytes:
    """The bytes at `path`; on first use writes `create()` (default: 32 random bytes as hex).

    O_EXCL makes two processes starting together agree on one key.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        content = create() if create is not None else secrets.token_hex(32).encode()
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(content)
    return path.read_bytes()


def secret_text(path: Path) -> str:
    """A random hex secret kept at `path` (see key_file)."""
    return key_file(path).decode().strip()
