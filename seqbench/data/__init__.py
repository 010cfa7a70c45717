"""Data sources (Yahoo Finance, CSV, built-in, synthetic, texts), splits, scalers and windows.

Imports: errors, io (the spec's types only, under TYPE_CHECKING). Imported by the spec and above.
"""
