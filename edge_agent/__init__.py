"""Gate runtime: credential input, door relay, status with last will, fail-closed decisions."""
