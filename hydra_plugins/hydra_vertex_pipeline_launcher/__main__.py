"""`python -m hydra_plugins.hydra_vertex_pipeline_launcher`: the `hydra-vertex-pipeline` command."""

import sys

if __name__ == "__main__":
    # Imported only here: Hydra's plugin scan loads this module (not named `_*`) in every app.
    from ._cli._main import main

    sys.exit(main())
