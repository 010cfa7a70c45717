"""Tasks beyond forecasting."""
