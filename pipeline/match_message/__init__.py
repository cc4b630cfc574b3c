"""Step 5's machinery, one job per module."""
