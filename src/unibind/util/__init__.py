"""Small shared helpers: atomic writes, digests, JSON, runtime (device, dtype, cache folder)."""
