"""Signed decisions: Ed25519 keys, decision tokens (JWS), the JWKS document and verification."""
