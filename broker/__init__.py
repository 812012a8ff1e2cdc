"""The token broker: owns every user's Zoho OAuth connection and hands out
fresh access tokens over gRPC. It alone ever sees refresh tokens.

Its gRPC face is at this level (servicer.py, validation.py, converters.py, authz.py; wired
by app.py from config.py) over three packages: core/ (what it does), storage/ (its
database: the only code that issues SQL) and operator/ (the zoho-broker command line)."""
