"""`python -m bench`: see bench/run.py (scripts/bench runs the setup first)."""

from bench.run import main

raise SystemExit(main())
