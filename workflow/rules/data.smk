# The experiment's resolved config, and its data: synthesised, built from the official sources, or a
# folder the user already has.


rule experiment_config:
    """The validated config with every default filled in: what each job reads. Rewritten (and the
    jobs depending on it rerun) when the config's content changes."""
    output:
        RESOLVED_CONFIG,
    params:
        values=config_to_dict(EXPERIMENT),
    log:
        f"{RESULTS}/logs/experiment_config.log",
    run:
        import yaml

        Path(output[0]).write_text(yaml.safe_dump(params.values, sort_keys=False))


rule prepare_data:
    """Write the synthetic data (data.source: synthetic), build the mini datasets from the official
    VOC 2012, COCO 2017 and Imagenette archives (official; downloads cached under
    data.official.cache), or validate an existing folder in the challenge layout (folder); then list
    every file with its sha256."""
    input:
        config=RESOLVED_CONFIG,
        subsets=SUBSET_FILES,
    output:
        MANIFEST,
    log:
        f"{RESULTS}/logs/prepare_data.log",
    shell:
        "python -m unihead prepare --config {input.config:q} --manifest {output:q} > {log:q} 2>&1"


# Official sources are downloaded on the machine running Snakemake: a cluster's compute nodes often
# have no internet.
if EXPERIMENT.data.source == "official":

    localrules:
        prepare_data,
