"""Adapters for the frameworks people train in (Keras, Lightning, Hugging Face).

Each adapter imports its framework inside the function that needs it and, when the framework is
missing, raises one line naming the extra to install (``pip install 'initlab[keras]'``).
Nothing here is imported by ``import initlab``.
"""
