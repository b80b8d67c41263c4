"""A synthetic scheduler with sample data, for the demo federation."""
