"""Shared library of the visual-document-retrieval pipeline: the stages in stages/ import it."""
