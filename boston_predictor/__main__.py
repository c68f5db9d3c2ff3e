"""``python -m boston_predictor`` and the ``boston-predictor`` command (`main`)."""

import gc
import sys


def main() -> int:
    """Serves (see `boston_predictor.cli.main`), with the garbage collector off until the server starts.

    Start-up imports (KServe brings FastAPI, pydantic, kubernetes' client, pandas) allocate some 300 000 objects that
    live as long as the process; collecting on the way walks them again and again, about 0.4 s of a 2 s cold start
    (measured with ``python -X importtime`` and by timing the imports with the collector on and off). The server
    collects once, freezes what is left and turns the collector back on before it serves (`PredictorServer.start`).
    """
    gc.disable()
    from boston_predictor.cli import main as serve

    return serve()


if __name__ == "__main__":
    sys.exit(main())
