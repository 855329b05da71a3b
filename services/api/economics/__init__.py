"""Unit economics (SPEC 5.10): `/v1/economics/summary`, `/v1/economics/settings`."""
