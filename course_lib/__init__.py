"""course_lib: the helper library of the Distillation Course.

Every notebook imports its helpers from here; none is redefined in a notebook.
Modules: ``config`` (FAST mode, seeds, folders), ``data`` (offline MNIST),
``models``, ``train``, ``evaluate``, ``cache`` (checkpoints keyed by config),
``losses``, ``checks`` (exercise feedback), ``exercises`` (builds exercises/ from
solutions/), ``emails`` and ``router`` (lesson 04).
"""
__version__ = "0.1.0"
