"""From ASE ``Atoms`` to the tensor dictionaries the model reads."""
