"""Just-in-time consent requests: a provider asks a person for a grant, the person answers."""
