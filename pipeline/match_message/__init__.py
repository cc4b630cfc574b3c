"""Step 5 (match and message), split into small modules."""
