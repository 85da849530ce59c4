"""Acoustic features: FeatureConfig (THE one mel definition), log-mel, F0, energy, statistics, dumps."""

from speechkd.features.config import MEL_FIELDS, FeatureConfig, check_compatible

__all__ = ["FeatureConfig", "check_compatible", "MEL_FIELDS"]
