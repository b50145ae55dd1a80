"""The site hash key on a gate: what lets it look up a presented card or PIN in its cache.

Trade-off: the key is on the gate's disk (config or data_dir/keys/hash.key, mode 0600). Whoever
takes a gate and reads its disk can run the HMAC over guessed card ids and PINs and test them
against the cache, and could forge lookups for every gate of the site, since card UIDs and PINs
have little entropy. Alternatives considered:
- a per-gate key: impossible without card ids in clear on the server, which keeps only the
  site-key HMAC (that is the point of keyed hashing);
- an unkeyed or slow hash sent to gates: unkeyed is brute-forced offline just the same; a slow
  hash (scrypt over the stored HMAC) still needs the key at the gate, and costs the server seconds
  of CPU per gate per snapshot and the gate tens of ms per decision;
- the real fix is hardware: an HMAC key sealed in a secure element (ATECC608 / TPM) so it cannot
  be read out, with the rotation of issue 6 item 5 after a gate is lost. Out of scope here.
A gate never generates a key of its own: one that does not match the site's would silently
deny everybody offline, so without a configured key offline card/PIN decisions are off.
"""

from __future__ import annotations

import logging

from config.settings import Settings
from store.keyed_hash import KeyedHasher

log = logging.getLogger(__name__)


def gate_hasher(settings: Settings) -> KeyedHasher | None:
    """The site hasher (current and previous keys, so credentials not yet re-hashed after a rotation
    still match) if this gate was given the key, else None (offline cards and PINs denied)."""
    keys = settings.data_dir / "keys"
    previous = [p.get_secret_value() for p in settings.previous_hash_keys]
    previous_dir = keys / "previous"
    if previous_dir.is_dir():
        previous += [p.read_text().strip() for p in sorted(previous_dir.glob("*.key"))]
    if settings.hash_key is not None:
        return KeyedHasher.from_secret(settings.hash_key.get_secret_value(), previous)
    path = keys / "hash.key"
    if path.is_file():
        return KeyedHasher.from_secret(path.read_text().strip(), previous)
    log.warning("no site hash key on this gate (hash_key or %s): offline card and PIN decisions are off", path)
    return None
