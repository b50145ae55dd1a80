"""Why an admin command was refused; each maps to a reply."""

from __future__ import annotations

from schemas.admin import DuplicateKind

_WORDS = {"CARD": ("Card", "카드"), "FACE": ("Face", "얼굴"), "FINGER": ("Fingerprint", "지문")}


class CommandRefused(Exception):
    """A command that cannot be carried out; `code` is stable, the message is for people."""

    code = "REFUSED"


class UserNotFound(CommandRefused):
    code = "USER_NOT_FOUND"


class UserExists(CommandRefused):
    code = "USER_EXISTS"


class CredentialNotFound(CommandRefused):
    code = "CREDENTIAL_NOT_FOUND"


class TooManyTemplates(CommandRefused):
    code = "TEMPLATE_LIMIT"


class UnusablePhoto(CommandRefused):
    code = "UNUSABLE_PHOTO"


class UnusableFingerprint(CommandRefused):
    code = "UNUSABLE_FINGERPRINT"


class NoMatcher(CommandRefused):
    """No fingerprint matcher is installed on this worker."""

    code = "NO_FINGERPRINT_MATCHER"


class DuplicateCredential(CommandRefused):
    """The credential belongs to another user (the field's USER_DUPLICATE_CREDENTIAL)."""

    code = "USER_DUPLICATE_CREDENTIAL"

    def __init__(self, kind: DuplicateKind, owner_id: str, owner_name: str | None) -> None:
        english, korean = _WORDS[kind]
        super().__init__(f"Duplicate {english} ({owner_id})")
        self.kind: DuplicateKind = kind
        self.owner_id = owner_id
        self.owner_name = owner_name
        self.message_ko = f"중복된 {korean} ({owner_id})"


class BadImportFile(CommandRefused):
    """The CSV file as a whole is unusable (header, size), or could not be applied whole."""

    code = "BAD_IMPORT_FILE"


class PinUnavailable(CommandRefused):
    """The PIN is taken within the user's unit (which holder is not said: that would reveal their PIN)."""

    code = "PIN_UNAVAILABLE"


class WeakPin(CommandRefused):
    code = "WEAK_PIN"
