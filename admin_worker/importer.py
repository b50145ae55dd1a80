"""Bulk import of residents from CSV: every row is checked first, then all are applied or none."""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field

from pydantic import TypeAdapter, ValidationError

from admin_worker.errors import BadImportFile
from schemas.access import CardId
from schemas.admin import CreateUser, ImportRow
from schemas.base import new_id
from schemas.codes import CredentialType
from schemas.documents import StoredCredential, User
from store import errors as store_errors
from store.keyed_hash import KeyedHasher
from store.repository import Store

log = logging.getLogger(__name__)

COLUMNS = ("user_id", "name", "building", "unit", "phone", "groups", "card_id")
REQUIRED = ("user_id", "name")
MAX_ROWS = 10_000
_card = TypeAdapter(CardId)


@dataclass
class _Planned:
    row: int
    user: CreateUser
    card_key: str | None


@dataclass
class ImportResult:
    """Every row's outcome; `applied` only when all rows passed and it was not a dry run."""

    rows: list[ImportRow] = field(default_factory=list)
    applied: bool = False

    @property
    def failed(self) -> int:
        return sum(1 for r in self.rows if r.outcome != "OK")


class ResidentImporter:
    """Plans and applies one CSV file against the store (blocking; run on the admin thread)."""

    def __init__(self, store: Store, hasher: KeyedHasher) -> None:
        self._store = store
        self._hasher = hasher

    def run(self, text: str, dry_run: bool) -> ImportResult:
        """Check every row; apply them all if every row passed and this is not a dry run."""
        result, planned = self._plan(text)
        if result.failed or dry_run:
            return result
        self._apply(planned)
        result.applied = True
        return result

    def _plan(self, text: str) -> tuple[ImportResult, list[_Planned]]:
        reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))  # Excel writes a BOM
        header = [h.strip() for h in reader.fieldnames or []]
        unknown = [h for h in header if h not in COLUMNS]
        missing = [h for h in REQUIRED if h not in header]
        if unknown or missing:
            raise BadImportFile(f"header must name columns from {','.join(COLUMNS)}; "
                                f"unknown: {unknown[:5]}, missing: {missing}")
        reader.fieldnames = header
        groups_known = {g.id for g in self._store.iter_access_groups()}
        result = ImportResult()
        planned: list[_Planned] = []
        seen_users: dict[str, int] = {}
        seen_cards: dict[str, str] = {}
        for number, raw in enumerate(reader, start=1):
            if number > MAX_ROWS:
                raise BadImportFile(f"more than {MAX_ROWS} rows: split the file")
            if None in raw:  # more cells than header columns
                result.rows.append(ImportRow(row=number, outcome="INVALID", error="more cells than columns"))
                continue
            cells = {k: (v or "").strip() for k, v in raw.items()}
            row = self._check_row(number, cells, groups_known, seen_users, seen_cards)
            result.rows.append(row[0])
            if row[1] is not None:
                planned.append(row[1])
        if not result.rows:
            raise BadImportFile("no rows after the header")
        return result, planned

    def _check_row(self, number: int, cells: dict[str, str], groups_known: set[str],
                   seen_users: dict[str, int], seen_cards: dict[str, str]) -> tuple[ImportRow, _Planned | None]:
        user_id = cells.get("user_id") or None
        groups = [g.strip() for g in cells.get("groups", "").split(";") if g.strip()]
        try:
            user = CreateUser(user_id=cells.get("user_id", ""), name=cells.get("name", ""),
                              building=cells.get("building") or None, unit=cells.get("unit") or None,
                              phone=cells.get("phone") or None, groups=groups)
            card = _card.validate_python(cells["card_id"]) if cells.get("card_id") else None
        except ValidationError as exc:
            # Field names and reasons only: cell values (card ids) stay out of the report and logs.
            reasons = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'card_id'}: {e['msg']}"
                                for e in exc.errors())
            return ImportRow(row=number, user_id=user_id, outcome="INVALID", error=reasons[:500]), None
        if not user.name:
            return ImportRow(row=number, user_id=user_id, outcome="INVALID", error="name: required"), None
        if user.user_id in seen_users:
            return ImportRow(row=number, user_id=user_id, outcome="DUPLICATE_IN_FILE",
                             error=f"user id also on row {seen_users[user.user_id]}"), None
        seen_users[user.user_id] = number
        unknown = [g for g in groups if g not in groups_known]
        if unknown:
            return ImportRow(row=number, user_id=user_id, outcome="UNKNOWN_GROUP",
                             error=f"no access group {unknown[0]}"), None
        if self._store.get_user(user.user_id) is not None:
            return ImportRow(row=number, user_id=user_id, outcome="USER_EXISTS"), None
        key = None
        if card is not None:
            key = self._hasher.lookup_key(CredentialType.CARD, card)
            if key in seen_cards:
                return ImportRow(row=number, user_id=user_id, outcome="DUPLICATE_IN_FILE",
                                 error="card also given to another row", matched_user_id=seen_cards[key]), None
            seen_cards[key] = user.user_id
            holder = self._store.find_credential_any(
                CredentialType.CARD, [k for _, k in self._hasher.lookup_keys(CredentialType.CARD, card)])
            if holder is not None:
                return ImportRow(row=number, user_id=user_id, outcome="DUPLICATE_CARD",
                                 error=f"Duplicate Card ({holder.user_id})", matched_user_id=holder.user_id), None
        return ImportRow(row=number, user_id=user_id, outcome="OK"), _Planned(number, user, key)

    def _apply(self, planned: list[_Planned]) -> None:
        """Write every planned row; on any failure undo the rows written so far, then refuse."""
        created: list[str] = []
        try:
            for p in planned:
                u = p.user
                if not self._store.insert_user(User(id=u.user_id, name=u.name, kind=u.kind, building=u.building,
                                                    unit=u.unit, phone=u.phone, groups=u.groups)):
                    raise BadImportFile(f"row {p.row}: user {u.user_id} was created meanwhile; nothing imported")
                created.append(u.user_id)
                if p.card_key is not None:
                    self._store.add_credential(StoredCredential(
                        id=f"card-{new_id()[:16]}", kind=CredentialType.CARD, user_id=u.user_id,
                        lookup_key=p.card_key, key_id=self._hasher.key_id))
        except store_errors.DuplicateCredential:
            self._undo(created)
            raise BadImportFile("a card was enrolled meanwhile by another admin; nothing imported") from None
        except BaseException:
            self._undo(created)
            raise

    def _undo(self, created: list[str]) -> None:
        for user_id in created:
            self._store.delete_user(user_id)
        log.warning("import rolled back: %d users removed again", len(created))
