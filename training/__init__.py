"""Applications built on the ``mmv`` library: pretraining, deflation, evaluation, bank building, data preparation.

Each job is runnable as ``python -m training.<job>`` and takes ``main(argv: list[str] | None)``
so tests call it in-process.
"""
