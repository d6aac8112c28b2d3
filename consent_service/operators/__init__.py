"""The operator console: providers, enrollment disputes, the audit chain and system health."""
