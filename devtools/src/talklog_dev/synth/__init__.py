"""Synthetic message stores: a seeded generator, the spec's section-5 examples, summaries."""

from talklog_dev.synth.generator import GenerationReport, GeneratorConfig, TargetIds, generate

__all__ = ["GenerationReport", "GeneratorConfig", "TargetIds", "generate"]
