"""The runtime of the protocol language: what runs a campaign on a connected lab.

The engine (state machine, interlocks, durability), the connected lab and its safe state,
the NMR shim schedule, the scale-up runner, the supervisor, and the ``run``/``scale-up``
commands. The runtime uses the language (:mod:`robochem.protocols`: model, load, checks,
units, recipe, steps, schema); the language never imports the runtime.
"""
