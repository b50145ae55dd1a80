"""Door relays: a GPIO output on a Raspberry Pi (gpiozero), or a log line elsewhere.

Locked is the resting state; the agent unlocks and schedules the lock again.
"""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger(__name__)


class DoorRelay(Protocol):
    """Something that can unlock and lock a door."""

    unlock_count: int

    def unlock(self) -> None: ...

    def lock(self) -> None: ...

    @property
    def unlocked(self) -> bool: ...


class LogRelay:
    """A simulated relay: says what a real one would do."""

    def __init__(self, gate_id: str) -> None:
        self._gate_id = gate_id
        self._unlocked = False
        self.unlock_count = 0

    @property
    def unlocked(self) -> bool:
        return self._unlocked

    def unlock(self) -> None:
        self._unlocked = True
        self.unlock_count += 1
        log.info("gate=%s door UNLOCKED", self._gate_id)

    def lock(self) -> None:
        if self._unlocked:
            log.info("gate=%s door LOCKED", self._gate_id)
        self._unlocked = False


class GpioRelay:
    """A relay on a GPIO pin, energised to unlock (gpiozero)."""

    def __init__(self, gate_id: str, pin: int) -> None:
        from gpiozero import OutputDevice  # only present on gate hardware

        self._gate_id = gate_id
        self._device = OutputDevice(pin, active_high=True, initial_value=False)
        self.unlock_count = 0

    @property
    def unlocked(self) -> bool:
        return bool(self._device.value)

    def unlock(self) -> None:
        self._device.on()
        self.unlock_count += 1

    def lock(self) -> None:
        self._device.off()


def make_relay(gate_id: str, pin: int | None) -> DoorRelay:
    """A GPIO relay when a pin is configured and gpiozero works here, else the log relay."""
    if pin is not None:
        try:
            return GpioRelay(gate_id, pin)
        except Exception as exc:  # noqa: BLE001 - no gpiozero, or no GPIO on this machine
            log.warning("gate=%s GPIO relay on pin %s unavailable (%s); using log relay", gate_id, pin, exc)
    return LogRelay(gate_id)
