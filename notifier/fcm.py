"""Push to a phone through Firebase Cloud Messaging, with the firebase-admin SDK (FCM HTTP v1).

firebase-admin is synchronous (requests): each send runs in a worker thread. It retries 500/503
itself, up to 4 times with exponential backoff (about 7 s in all), and bounds each attempt with the
app's `httpTimeout`; then it raises, and so does this channel. Outbound HTTPS honours the usual
HTTPS_PROXY / REQUESTS_CA_BUNDLE environment, for sites behind an egress proxy.
"""

from __future__ import annotations

import asyncio
import json
import logging
import warnings
from pathlib import Path

import firebase_admin
from firebase_admin import credentials, exceptions, messaging
from google.auth import exceptions as auth_exceptions

from notifier.base import InvalidAddress, NotApplicable, Notification, NotifyConfigError, NotifyError
from schemas.base import new_id

log = logging.getLogger(__name__)


class FcmChannel:
    """Sends each notification with a device token as an FCM message: notification title/body plus
    the data payload (`data` and `device_data`)."""

    name = "fcm"

    def __init__(self, service_account_file: Path, project_id: str | None = None, timeout_s: float = 10.0) -> None:
        try:
            credential = credentials.Certificate(str(service_account_file))
        except (OSError, ValueError, json.JSONDecodeError) as exc:
            # The message names the file, never its content (it holds a private key).
            raise NotifyConfigError(f"FCM service account {service_account_file} unusable: "
                                    f"{type(exc).__name__}") from None
        options: dict[str, object] = {"httpTimeout": timeout_s}
        if project_id:
            options["projectId"] = project_id
        # A named app of our own, so another firebase-admin user in the process is not disturbed.
        self._app = firebase_admin.initialize_app(credential, options, name=f"passage-fcm-{new_id()}")

    async def send(self, notification: Notification) -> None:
        """Push `notification` to its device token; InvalidAddress if FCM no longer knows the token."""
        if not notification.fcm_token:
            raise NotApplicable("no FCM device token")
        with warnings.catch_warnings():
            # firebase-admin 7.7 deprecates `token` for `fid` (installation ids); the residents' and
            # visitors' apps hand us registration tokens, which FCM v1 still takes as `token`.
            warnings.simplefilter("ignore", DeprecationWarning)
            message = messaging.Message(
                token=notification.fcm_token,
                notification=messaging.Notification(title=notification.title, body=notification.body),
                data={**notification.data, **notification.device_data} or None,
            )
        try:
            await asyncio.to_thread(messaging.send, message, app=self._app)
        except messaging.UnregisteredError:
            raise InvalidAddress("FCM: device token no longer registered") from None
        except exceptions.InvalidArgumentError:
            # Our payload is schema-checked, so FCM's INVALID_ARGUMENT is in practice the token.
            raise InvalidAddress("FCM: device token refused as invalid") from None
        except exceptions.FirebaseError as exc:
            # Only the status code: the message may quote the request back.
            raise NotifyError(f"FCM send failed: {exc.code}") from None
        except auth_exceptions.GoogleAuthError as exc:
            raise NotifyError(f"FCM credentials refused by the token endpoint ({type(exc).__name__})") from None
        except ValueError as exc:
            raise NotifyError(f"FCM message rejected before sending ({type(exc).__name__})") from None

    async def aclose(self) -> None:
        """Release the firebase-admin app (its close runs an event loop of its own: off this one)."""
        await asyncio.to_thread(firebase_admin.delete_app, self._app)
