"""Search: the query encoder, vector and text indexes, query planning and results."""
