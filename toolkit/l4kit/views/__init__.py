"""Rendering: Rich tables, JSON and Mermaid, handed their data by :mod:`l4kit.commands`."""
