"""Policy: the PolicyEngine role, the input document, strict decision parsing, Rego engines."""
