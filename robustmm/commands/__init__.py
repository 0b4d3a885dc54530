"""CLI commands beyond ``run``/``report``/``data synth adni``: one module per capability, each
with ``register(sub, data, synth)`` (see ``robustmm.cli.command_modules``)."""
