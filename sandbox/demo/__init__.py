"""The demo tenant, its records, and the `--trickle` stream of made-up changes."""
