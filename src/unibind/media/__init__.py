"""Media decoding shared by the encoders and extraction: images and sound read from files or
bytes under size and length limits (``decode``)."""
