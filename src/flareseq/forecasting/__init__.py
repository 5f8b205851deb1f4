"""Forecasts for users: today's active regions and the HTTP forecast service.

The top library layer: it uses a trained run's model (``flareseq.experiments.run_models``)
and is used only by the command line.
"""
