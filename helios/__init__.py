"""Helios Studio's engine: streaming, timeline-steered Helios video generation on diffusers' components."""
