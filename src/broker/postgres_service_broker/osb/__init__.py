"""The Open Service Broker API v2.17 over HTTP; knows nothing of PostgreSQL."""
