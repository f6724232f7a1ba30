"""One launch, on the user's machine: compose, stage, build, submit, watch, collect; the run record
and resume. Imports the backends and the shared modules, never the step."""
