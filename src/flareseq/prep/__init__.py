"""Preparation without leakage: splits, sampling, missing values, scaling, sample layouts.

Everything that learns from data (missing-value medians, the scaler's statistics) is fitted on
the training part only and then applied to every part.
"""
