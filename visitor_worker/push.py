"""Sending a visitor their pass by push, within a time budget, through the notifier channels."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from notifier.base import Channel, NotApplicable, Notification, NotifyError
from store.passes import VisitorPass

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PushResult:
    pushed: bool
    problem: str | None = None  # why not, in words the resident's app can show


def pass_notification(visitor_pass: VisitorPass, token: str, fcm_token: str, tz: ZoneInfo) -> Notification:
    """The push a visitor gets: what and when in the text, the pass token for their phone only."""
    start = visitor_pass.valid_from.astimezone(tz).strftime("%Y-%m-%d %H:%M")
    end = visitor_pass.valid_until.astimezone(tz).strftime("%Y-%m-%d %H:%M")
    entries = "1 entry" if visitor_pass.max_uses == 1 else f"{visitor_pass.max_uses} entries"
    return Notification(
        recipient_id=visitor_pass.id,
        title="Your visitor pass",
        body=f"Show this QR code at the gate camera. Valid {start} to {end} ({tz.key}), {entries}.",
        data={"pass_id": visitor_pass.id, "valid_from": visitor_pass.valid_from.isoformat(),
              "valid_until": visitor_pass.valid_until.isoformat()},
        # The token opens doors: device-only data, never published or logged by any channel.
        device_data={"pass_token": token},
        fcm_token=fcm_token,
    )


class PassPusher:
    """Tries each channel in turn until one delivers; gives up on the reply after `timeout_s`
    (a late push still lands, it just no longer holds up the resident)."""

    def __init__(self, channels: Sequence[Channel], timeout_s: float) -> None:
        self._channels = list(channels)
        self._timeout_s = timeout_s
        self._background: set[asyncio.Task[PushResult]] = set()

    @property
    def enabled(self) -> bool:
        return bool(self._channels)

    @property
    def channels(self) -> list[Channel]:
        return list(self._channels)

    async def push(self, notification: Notification) -> PushResult:
        if not self._channels:
            return PushResult(False, "push is not configured on this site: share the QR code")
        task = asyncio.create_task(self._deliver(notification), name=f"push-{notification.recipient_id}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        done, _ = await asyncio.wait({task}, timeout=self._timeout_s)
        if not done:
            log.warning("pass=%s push not confirmed within %.1fs; still trying", notification.recipient_id,
                        self._timeout_s)
            task.add_done_callback(_log_late)
            return PushResult(False, f"push not confirmed within {self._timeout_s:g}s: share the QR code")
        return task.result()

    async def _deliver(self, notification: Notification) -> PushResult:
        problems: list[str] = []
        for channel in self._channels:
            try:
                await channel.send(notification)
            except NotApplicable as exc:
                problems.append(f"{channel.name}: {exc}")
                continue
            except NotifyError as exc:
                log.warning("pass=%s push through %s failed: %s", notification.recipient_id, channel.name, exc)
                problems.append(f"{channel.name}: {exc}")
                continue
            except Exception:
                # A broken channel must not cost the resident their QR code.
                log.exception("pass=%s push channel %s crashed", notification.recipient_id, channel.name)
                problems.append(f"{channel.name}: internal error")
                continue
            log.info("pass=%s pushed to the visitor through %s", notification.recipient_id, channel.name)
            return PushResult(True)
        return PushResult(False, "push failed (" + "; ".join(problems)[:400] + "): share the QR code")

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Let pushes still on their way finish (at shutdown)."""
        if self._background:
            await asyncio.wait(self._background, timeout=timeout_s)


def _log_late(task: asyncio.Task[PushResult]) -> None:
    if task.cancelled():
        return
    result = task.result()
    log.info("late push %s", "delivered" if result.pushed else f"failed: {result.problem}")
