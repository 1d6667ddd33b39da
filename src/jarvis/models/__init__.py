"""Model store, catalog, registries and downloads."""
