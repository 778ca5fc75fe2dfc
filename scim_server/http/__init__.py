"""HTTP layer: blueprints, authentication, errors and content types."""
