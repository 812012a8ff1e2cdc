"""The event log: Zoho's changes stored once each, in order, replayable by cursor."""
