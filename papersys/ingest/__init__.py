"""Getting metadata in: OAI-PMH harvesting and snapshot loading, both normalised to the metadata schema."""
