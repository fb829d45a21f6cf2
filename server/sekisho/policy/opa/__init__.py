"""The OPA server engine: REST client, policy publisher, and the PolicyEngine over both."""
