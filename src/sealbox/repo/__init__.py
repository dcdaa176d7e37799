"""The sealed, deduplicating repository (system and recordings backups); see docs/design/format.md."""
