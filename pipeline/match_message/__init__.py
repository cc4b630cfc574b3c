"""Step 5's modules: matching, messages, costs, the review page."""
