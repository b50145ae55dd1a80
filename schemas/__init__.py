"""Pydantic models of every Passage message and stored document, topic names and codes."""
