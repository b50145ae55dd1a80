"""The residents' visitor API bridge: HTTP in, `visitor/register` out, nothing decided here."""
