"""Helios Studio's Gradio app: a thin shell over the `helios` engine."""
