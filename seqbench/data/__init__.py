"""Data sources (Yahoo Finance, CSV, built-in, synthetic), splits, scalers and windows."""
