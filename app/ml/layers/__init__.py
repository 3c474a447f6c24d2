"""Layers: their specs, builders and the custom modules some of them need."""
