"""The embedded store: a SecantusDB server (MongoDB wire protocol) run as a child process.

It is GPL-2.0 software, kept at arm's length in its own process and installed only with the
`embedded` extra. Production sites point `PASSAGE_MONGO_URI` at MongoDB instead.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

import pymongo
from pymongo.errors import PyMongoError

from config.ports import free_port
from store.errors import StoreUnavailable

log = logging.getLogger(__name__)


class EmbeddedMongoServer:
    """Starts `secantusd-py` on loopback and stops it again."""

    def __init__(self, data_dir: Path | None, port: int = 0, host: str = "127.0.0.1") -> None:
        self.data_dir = data_dir
        self.host = host
        self.port = port or free_port(host)
        self._proc: subprocess.Popen[bytes] | None = None
        # The server's own log: a pipe nobody reads would stall it.
        self._log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}/?directConnection=true"

    def start(self, timeout: float = 30.0) -> None:
        """Start the server and wait until it answers a ping."""
        storage = ":memory:" if self.data_dir is None else str(self.data_dir)
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [*_server_command(), "--host", self.host, "--port", str(self.port),
               "--storage-path", storage, "--log-level", "WARNING"]
        if self.data_dir is not None:
            self._log.close()
            self._log = open(self.data_dir / "server.log", "w+b")  # noqa: SIM115
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                                      stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
            self.uri, serverSelectionTimeoutMS=250, connectTimeoutMS=250)
        try:
            while True:
                if self._proc.poll() is not None:
                    raise StoreUnavailable(f"embedded store exited at start:\n{self._log_tail()}")
                try:
                    client.admin.command("ping")
                    break
                except PyMongoError:
                    if time.monotonic() > deadline:
                        raise StoreUnavailable(f"embedded store did not answer within {timeout}s") from None
                    time.sleep(0.05)
        except BaseException:
            # Including SystemExit from a SIGTERM during start-up: never leave the child behind.
            self.stop()
            raise
        finally:
            client.close()
        log.info("embedded store listening on %s:%s (%s)", self.host, self.port, storage)

    def _log_tail(self) -> str:
        self._log.flush()
        self._log.seek(0)
        return self._log.read()[-2000:].decode(errors="replace")

    def stop(self) -> None:
        """Stop the server; waits for it to flush to disk."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._log.close()


def _server_command() -> list[str]:
    exe = shutil.which("secantusd-py", path=str(Path(sys.executable).parent))
    if exe is not None:
        return [exe]
    try:
        import secantus.cli  # noqa: F401
    except ImportError:
        raise StoreUnavailable(
            "the embedded store needs the 'embedded' extra: pip install 'passage[embedded]', "
            "or set PASSAGE_MONGO_URI to a MongoDB server") from None
    return [sys.executable, "-c", "import sys; from secantus.cli import main; sys.exit(main())"]
