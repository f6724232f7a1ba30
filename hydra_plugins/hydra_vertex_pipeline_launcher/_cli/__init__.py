"""The `hydra-vertex-pipeline` command line, on the user's machine: status, attach and cancel of
the runs recorded in a dir. Reads records, never the app."""
