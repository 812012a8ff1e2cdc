"""What an operator runs: the `zoho-broker` command line (cli.py: serve, migrate,
reencrypt, new-key), and its commands that manage connections through a running broker
over gRPC (connection_commands.py), with Zoho's consent in a browser (consent_flow.py) and
the broker's refusals said as what to do (explanations.py)."""
