"""Collection of the doctest modules under gradflow/ (``testpaths`` in pyproject.toml).

``gradflow/compiled_kernels.py`` and ``gradflow/compiled_certify.py`` are the numba half of the
optional compiled backend (extra ``fast``): they import numba at module level and are only ever
imported by ``gradflow.compiled`` when numba is installed, so without numba there is nothing to
collect.
"""

import importlib.util

NUMBA_ONLY = ["gradflow/compiled_kernels.py", "gradflow/compiled_certify.py"]
collect_ignore = [] if importlib.util.find_spec("numba") else NUMBA_ONLY
