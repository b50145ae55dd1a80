"""Writing site credentials to disk: never over an existing file unless asked, keys readable by the owner only."""

from __future__ import annotations

import os
from pathlib import Path


class CredentialFileExists(FileExistsError):
    """A credential file is already there; replacing it must be asked for explicitly."""


def write_file(path: Path, data: bytes, *, mode: int, overwrite: bool = False) -> None:
    """Write `data` to `path` with permission bits `mode`.

    Without `overwrite`, an existing file is an error (O_EXCL, so two writers cannot both win).
    With it, the new content goes to a temporary file that is renamed over the old one, so a
    reader never sees a half-written key.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not overwrite:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            raise CredentialFileExists(f"{path} exists; refusing to overwrite it") from None
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(path, mode)  # the umask may have taken bits away; mode is what was asked for
        return
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
