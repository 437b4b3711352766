"""Migration of legacy yearly datasets (lyk/ArxivEmbedding generations 1 and 2) into the papersys store."""
