"""Uploaded media: what a file is (sniffing) and safe decoding of audio/video containers (PyAV)."""
