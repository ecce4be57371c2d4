"""`python -m nodes WORKFLOW.json [--set NODE.INPUT=VALUE] [--output-dir DIR]` (see run_workflow.py)."""
import sys

from .run_workflow import main

sys.exit(main())
