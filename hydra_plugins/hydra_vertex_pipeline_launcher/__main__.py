"""`python -m hydra_plugins.hydra_vertex_pipeline_launcher`: the `hydra-vertex-pipeline` command."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
