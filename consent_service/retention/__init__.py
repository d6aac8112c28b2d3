"""Retention, published and enforced: the schedule of every class of data kept (from the
settings), the page that publishes it (/retention), the purges that enforce it (beat's
`retention.purge`, `consent-service retention purge`), each audited with its counts."""
