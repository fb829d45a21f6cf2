"""The gateway adapter: route table, token cache and the per-request authorizer behind ext_authz."""
