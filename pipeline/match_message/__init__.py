"""Step 5's machinery: asking Claude, the generators, assignment, resume, upload and the report."""
