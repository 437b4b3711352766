"""The on-disk store: paths, the year rule, atomic writes, and the metadata/embedding Parquet files."""
