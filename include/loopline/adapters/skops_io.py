"""``skops.io`` (the format MLflow saves scikit-learn models in), imported with its module scan
quiet.

On import skops looks names up in every loaded module; in a process that has loaded Airflow,
each lookup on one of Airflow's deprecated-import shim modules warns, and one import wrote 1,160
``DeprecatedImportWarning`` lines into a task's log (and the scheduler's, through the
forkserver's preload). Imported here first, every later ``import skops.io`` (MLflow's included)
finds it loaded.
"""

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"skops\.")
    import skops.io as io

__all__ = ["io"]
