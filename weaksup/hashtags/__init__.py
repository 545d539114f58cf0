"""Hashtags -> canonical WordNet labels: extraction, normalisation, resolver, vocabulary."""
