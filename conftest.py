"""Collection of the doctest modules under gradflow/ (``testpaths`` in pyproject.toml).

``gradflow/compiled_kernels.py`` is the numba half of the optional compiled backend (extra
``fast``): it imports numba at module level and is only ever imported by
``gradflow.compiled`` when numba is installed, so without numba there is nothing to collect.
"""

import importlib.util

collect_ignore = [] if importlib.util.find_spec("numba") else ["gradflow/compiled_kernels.py"]
