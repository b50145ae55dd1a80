"""Visitor registration, signed QR passes, push to the visitor's phone (issue 5; not built yet)."""
