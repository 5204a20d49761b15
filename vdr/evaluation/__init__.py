"""Scoring: pytrec_eval metrics, TREC runs, reranking, significance, the report and its plots."""
