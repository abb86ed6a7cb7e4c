"""Readers and writers for the HumanML3D / KIT-ML folder layout."""
