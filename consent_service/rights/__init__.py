"""A person's rights over their own data: see it (ledger), copy it (export), erase it (delete)."""
