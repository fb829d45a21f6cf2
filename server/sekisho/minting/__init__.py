"""Minting: claim building per profile, JWS encoding through a Signer, self-verification."""
