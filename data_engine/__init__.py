"""Data layer: dataset readers, the toy motion world, and the annotation engine for all stages."""
