"""Procedural art styles with a known answer: style families and image analogies."""
