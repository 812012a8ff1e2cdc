"""The test control API under `/_sandbox/` (server side) and its Python client."""
