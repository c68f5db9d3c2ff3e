"""The predictor's entry in the `kserve/` folder: runs the `boston_predictor` package's CLI.

The code lives in the installed package `boston_predictor` (``boston-predictor`` is its console script; the image's
ENTRYPOINT). This file keeps ``python kserve/predictor.py ...`` working from a checkout with the project installed.
"""

import sys

from boston_predictor.cli import main

if __name__ == "__main__":
    sys.exit(main())
