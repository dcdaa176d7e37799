"""The Sealbox agent: an HTTPS service on the storage server (docs/design/agent-api.md)."""
