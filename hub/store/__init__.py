"""Storage: the schema, the engine, the queue SQL and the read/write queries of the API."""
