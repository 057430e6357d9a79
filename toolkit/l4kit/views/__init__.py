"""Rendering: Rich tables, JSON and Mermaid. Imported by the CLI only."""
