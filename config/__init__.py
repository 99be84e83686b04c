"""Typed settings and the default data a city edits (topics, reply templates)."""
