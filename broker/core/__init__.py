"""What the broker does, with no gRPC and no SQL: connections created, read, listed and
deleted (connections.py); access tokens handed out valid (tokens.py) from this process's
copy (connection_cache.py), refreshed once across replicas (refresher.py) within Zoho's
mint budget (mint_budget.py); Zoho's accounts server (zoho_accounts.py) and its failures
as the broker's errors (accounts_errors.py). The servicer calls in; storage/ is called."""
