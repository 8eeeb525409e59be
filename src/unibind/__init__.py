"""unibind: one embedding space for text, images and sound."""
__version__ = "0.1.0"
