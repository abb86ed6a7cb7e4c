"""Small utilities shared by every package: configuration, atomic I/O, data errors, seeding."""
