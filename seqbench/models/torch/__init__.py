"""PyTorch models: the NumPy models' functions, parameter names and shapes, with autograd.

Importing this package needs torch (an optional extra); seqbench.models.registry
checks for it first and says how to install it.
"""
