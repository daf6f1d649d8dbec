"""Workflows: what each command line command does, as library functions (the CLI only parses arguments).

One function per command (``extract_job``, ``rank_job``, ``evaluate_encoded_job``, ``evaluate_used_job``,
``compare_job``, ``attribute_job``, ``textualize_job``) and the demo with its stages (``demo``,
``demo_encoded``, ``demo_used``, ``demo_textualize``). Numerics live in the stages they call; this layer loads, runs and writes files.
"""

from ._attribute import attribute_job, read_encoded
from ._demo import DEFAULT_SENTENCES, STAGES, DemoConfig, demo, demo_corpus
from ._demo_used import demo_used
from ._describe import (DescribeJobConfig, best_described, describe_job, describe_stage, description_agreement,
                        top_contexts)
from ._encoded import RankConfig, demo_encoded, evaluate_encoded_job, rank_job, seeded_ranker, write_encoded
from ._extract import extract_job
from ._report import report_job
from ._rerun import JOBS, rerun
from ._stats import layer_statistics, plot_layer_statistics
from ._textualize import demo_textualize, demo_textualize_config, markdown_table, textualize_job, top_neurons, words_needed_job, words_only
from ._units import compare_units, demo_sae, units_stage
from ._used import compare_job, evaluate_used_job, parse_rankings, read_ranking_file, write_comparison

__all__ = ["JOBS", "rerun", "attribute_job", "read_encoded", "best_described", "description_agreement", "describe_job", "DescribeJobConfig", "top_contexts", "describe_stage", "report_job", "words_needed_job", "DEFAULT_SENTENCES", "DemoConfig", "STAGES", "compare_job", "demo", "demo_corpus", "demo_encoded",
           "demo_textualize", "demo_textualize_config", "demo_used", "evaluate_encoded_job", "evaluate_used_job", "extract_job",
           "layer_statistics", "markdown_table", "parse_rankings", "plot_layer_statistics", "rank_job",
           "read_ranking_file", "seeded_ranker", "textualize_job", "top_neurons", "RankConfig",
           "words_only", "write_comparison", "write_encoded", "demo_sae", "units_stage", "compare_units"]
