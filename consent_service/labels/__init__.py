"""Labels that travel inside edited files (GB 45438 AIGC metadata and a C2PA manifest)."""
