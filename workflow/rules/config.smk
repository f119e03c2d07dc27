# The slice of the config each job reads (code/unihead/scopes.py), written into the file the job is given.
# A job depends on its slice only: Snakemake reruns a job whose params changed, so editing the threshold
# reruns the forgetting tables and the report but no training, a new seed trains only that seed's runs, and
# editing one variant reruns only that variant's benchmark.

SCOPES = {
    "data": data_scope,
    "forgetting": forgetting_scope,
    "report": report_scope,
    "readme": readme_scope,
    "ewc_sweep": sweep_table_scope,
}


rule job_config:
    """The config keys one job reads (data preparation, forgetting tables, report, README)."""
    output:
        JOB_CONFIG,
    params:
        values=lambda wildcards: SCOPES[wildcards.job](EXPERIMENT),
    log:
        f"{RESULTS}/logs/config/{{job}}.log",
    wildcard_constraints:
        job="|".join(SCOPES),
    run:
        write_yaml(output[0], params.values, log[0])


rule run_config:
    """What one training run reads: model, data, train and eval (its variant's overrides applied), its own
    strategies' options (EWC's penalty weight the sweep's choice, when the experiment sweeps it), its seed."""
    input:
        # the EWC sweep's choice, for a run with EWC when the experiment sweeps its penalty weight
        choice=lambda wildcards: [EWC_CHOICE] if EWC_CHOICE and "ewc" in strategy_components(wildcards.run) else [],
    output:
        RUN_CONFIG,
    params:
        values=lambda wildcards: run_scope(EXPERIMENT, wildcards.run, int(wildcards.seed), wildcards.get("variant")),
    log:
        f"{RESULTS}/logs/config/{RUN_ID}-seed{{seed}}.log",
    run:
        write_yaml(output[0], run_values(wildcards, input.choice), log[0])


rule sweep_run_config:
    """What one run of the EWC sweep reads: the ewc run with one penalty weight, trained on the training images
    but ewc_sweep.holdout of them and scored on those."""
    output:
        f"{SWEEP_RUN_DIR}/run.yaml",
    params:
        values=lambda wildcards: sweep_scope(EXPERIMENT, float(wildcards.weight), int(wildcards.seed)),
    log:
        f"{RESULTS}/logs/config/ewc_sweep/lambda{{weight}}-seed{{seed}}.log",
    run:
        write_yaml(output[0], params.values, log[0])


rule benchmark_config:
    """What the latency job reads: the model, size and training settings (its variant's overrides alone)."""
    output:
        BENCHMARK_CONFIG,
    params:
        values=lambda wildcards: benchmark_scope(EXPERIMENT, wildcards.get("variant")),
    log:
        f"{RESULTS}/logs/config/{BENCHMARK_JOB}.log",
    run:
        write_yaml(output[0], params.values, log[0])


localrules:
    job_config,
    run_config,
    sweep_run_config,
    benchmark_config,
