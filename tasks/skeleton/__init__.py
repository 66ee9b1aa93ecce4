"""The skeleton stage: neural skeletons and Coverage Axis over a collection (`skeletons.py`)."""
