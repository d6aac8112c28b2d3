"""The provider portal: provider staff manage their API keys and webhook and read their jobs."""
