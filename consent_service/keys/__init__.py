"""Key rotation: `consent-service keys rotate <purpose>` and the resumable re-wrap of every data
key under a new template KEK (the keyring itself is `consent_service.keyring`)."""
