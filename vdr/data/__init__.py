"""Data sources, page rendering and reading, OCR, generated queries, and the held-out set."""
