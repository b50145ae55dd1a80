"""Signed visitor passes: the compact token a QR code carries, its rendering and its reading."""
