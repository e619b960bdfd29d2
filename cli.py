"""Thin shim so ``python cli.py ...`` works from a checkout; see :mod:`gradflow.cli`."""

from gradflow.cli import main

if __name__ == "__main__":
    main()
