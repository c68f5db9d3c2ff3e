"""``python -m boston_predictor``: the same as the ``boston-predictor`` command."""

import sys

from boston_predictor.cli import main

sys.exit(main())
