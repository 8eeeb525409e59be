"""Builders that write manifests: folder, and (see the other modules) dataset-specific ones."""
