"""Enrollment commands, duplicate-credential check, audit trail (issue 4; not built yet)."""
