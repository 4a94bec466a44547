"""Graph -> Graph transformations: autodiff, training, simplification, decomposition.

Each pass is a named pure function with a one-line docstring saying what it needs and what it
guarantees; graphc/pipeline.py strings them together.
"""
