"""Open the configured store: MongoDB at `PASSAGE_MONGO_URI`, else the embedded server."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import TracebackType

import pymongo
from pymongo.errors import PyMongoError

from config.settings import Settings
from store.embedded import EmbeddedMongoServer
from store.errors import StoreUnavailable
from store.keyed_hash import KeyedHasher
from store.repository import Doc, Store
from store.sealing import TemplateSealer


@dataclass
class StoreHandle:
    """A connected store, its hasher, and the embedded server if this process started one."""

    store: Store
    hasher: KeyedHasher
    uri: str
    client: pymongo.MongoClient[Doc]
    server: EmbeddedMongoServer | None = field(default=None)

    def close(self) -> None:
        self.client.close()
        if self.server is not None:
            self.server.stop()

    def __enter__(self) -> StoreHandle:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def connect(uri: str, database: str, timeout_ms: int = 5000,
            hasher: KeyedHasher | None = None) -> tuple[pymongo.MongoClient[Doc], Store]:
    """A client and Store on `uri` (face templates usable when given the site `hasher`);
    raises StoreUnavailable if it does not answer."""
    client: pymongo.MongoClient[Doc] = pymongo.MongoClient(
        uri, tz_aware=True, serverSelectionTimeoutMS=timeout_ms, appname="passage")
    store = Store(client[database], sealer_for(hasher) if hasher is not None else None)
    try:
        store.ensure_indexes()
    except PyMongoError as exc:
        client.close()
        raise StoreUnavailable(f"store at {_redact(uri)} unusable: {exc}") from exc
    return client, store


def sealer_for(hasher: KeyedHasher) -> TemplateSealer:
    """The face-template sealer, keyed from the same site secret as the hasher."""
    return TemplateSealer({kid: hasher.derive("face-templates", kid) for kid in hasher.key_ids}, hasher.key_id)


def hasher_for(settings: Settings) -> KeyedHasher:
    """The site's card/PIN hasher: the configured key, else one kept in data_dir/keys."""
    previous = [p.get_secret_value() for p in settings.previous_hash_keys]
    if settings.hash_key is not None:
        return KeyedHasher.from_secret(settings.hash_key.get_secret_value(), previous)
    keys = settings.data_dir / "keys"
    return KeyedHasher.from_key_file(keys / "hash.key", keys / "previous", previous)


def open_store(settings: Settings, *, start_embedded: bool = True) -> StoreHandle:
    """Connect to MongoDB if configured; otherwise start (or reach) the embedded server."""
    hasher = hasher_for(settings)
    server = None
    if settings.mongo_uri is not None:
        uri = settings.mongo_uri.get_secret_value()
    elif start_embedded:
        server = EmbeddedMongoServer(settings.data_dir / "store", settings.store.embedded_port)
        server.start()
        uri = server.uri
    else:
        raise StoreUnavailable("no PASSAGE_MONGO_URI set and not allowed to start the embedded store")
    try:
        client, store = connect(uri, settings.store.database, hasher=hasher)
    except StoreUnavailable:
        if server is not None:
            server.stop()
        raise
    return StoreHandle(store=store, hasher=hasher, uri=uri, client=client, server=server)


def _redact(uri: str) -> str:
    # mongodb://user:pass@host -> mongodb://***@host
    if "@" in uri and "://" in uri:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return uri
