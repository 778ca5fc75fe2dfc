"""SCIM semantics: the schema registry, the filter compiler, the PATCH engine,
the IdP quirk normaliser and projection. Nothing here knows about HTTP."""
