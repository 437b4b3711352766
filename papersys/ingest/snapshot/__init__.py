"""Bulk bootstrap from the Kaggle arXiv snapshot: stream (io), map (parse), checkpoint (state), report."""
