"""unihead: regenerate the paper's tables and figures.

    snakemake --cores all --use-singularity            # the paper (workflow/config/paper.yaml), in the container
    snakemake --cores all --configfile workflow/config/demo.yaml   # the synthetic demo on a CPU

See README.md for the cluster profile and for running one job alone.
"""

import os
import shutil
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

min_version("9.0")


# The paper's config unless another is given: a --configfile replaces it instead of being merged
# into it, so no paper setting (GPUs, report into paper/) leaks into the demo or a user's experiment.
if not workflow.overwrite_configfiles:

    configfile: "workflow/config/paper.yaml"


# The config is checked against the package's own schema (pure Python: the login node running this
# file needs only snakemake, not torch). A bad key, value, range or strategy name stops the workflow
# before any job, naming the key; strings from --config 'workflow={...}' are read as the numbers they spell.
sys.path.insert(0, str(Path(workflow.basedir) / "code"))
from unihead.config import config_from_dict, config_to_dict  # noqa: E402
from unihead.runs import run_names, strategy_components  # noqa: E402
from unihead.schema import ConfigError, read_yaml  # noqa: E402
from unihead.scopes import (  # noqa: E402
    CHOICE_FILE,
    benchmark_scope,
    data_scope,
    forgetting_scope,
    readme_scope,
    read_choice,
    report_scope,
    run_scope,
    sweep_scope,
    sweep_table_scope,
)

try:
    # Snakemake's own reading keeps the last of a key given twice: read the files again, to refuse that
    for path in workflow.configfiles:
        read_yaml(Path(path), "config")
    EXPERIMENT = config_from_dict(config)
except ConfigError as err:
    raise WorkflowError(f"invalid config: {err}") from err


# Every rule runs in this image with --use-singularity (docker://... or a local .sif). Training on
# GPUs needs Apptainer's --nv; setting it through the environment makes the plain command work, and
# jobs that Snakemake submits to a cluster inherit it.
container: EXPERIMENT.workflow.container


if EXPERIMENT.workflow.gpus_per_run > 0:
    os.environ.setdefault("APPTAINER_NV", "1")
    os.environ.setdefault("SINGULARITY_NV", "1")


include: "workflow/rules/common.smk"
include: "workflow/rules/config.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/ewc_sweep.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/compare.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/paper.smk"


rule all:
    default_target: True
    input:
        FORGETTING_TABLES,
        REPORT_FILES,
        SWEEP_FILES,
        COMPARISON,
