"""The GES v2 API client: knows backups and graphs, nothing of policies."""
