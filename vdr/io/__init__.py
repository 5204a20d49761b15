"""Files, tables and images on disk, written atomically; the BEIR layout; a stage process's life."""
