"""Session recordings backup: incremental, sealed, tamper-evident (docs/design/format.md, part III)."""
