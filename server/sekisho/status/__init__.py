"""Token Status List (draft-ietf-oauth-status-list): index allocation, the shared store, the
Status List Token and revocations (docs/security-team.md "Revocation")."""
