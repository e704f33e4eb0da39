"""The `morphml` command line."""
