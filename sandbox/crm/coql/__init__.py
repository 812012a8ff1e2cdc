"""CRM's COQL: the parser, the evaluation (pure) and the `/crm/v8/coql` handler."""
