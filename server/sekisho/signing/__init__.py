"""Signing keys: states, keystore backends, the keyring snapshot used to sign and publish JWKS."""
