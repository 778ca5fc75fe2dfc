"""Storage layer: tables, sessions, migrations and the queries that answer SCIM requests."""
