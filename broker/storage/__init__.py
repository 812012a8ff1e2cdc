"""The broker's database, and the only code that talks to it: the tables and their
migrations (tables.py, migrations/), the records read from and written to them (records.py),
the token columns sealed at rest (sealed_columns.py), and every statement on
zoho_connections and zoho_refresh_audit (connection_store.py, lease.py, audit.py,
key_maintenance.py). The rest of the broker calls these and issues no SQL of its own
(tests/broker/test_storage_boundary.py holds it to that)."""
