# paper/main.pdf from the LaTeX source and the generated tables and figures. Needs a TeX
# distribution with latexmk (see README); nothing else in the workflow does.


rule paper:
    """Build paper/main.pdf (target: snakemake paper)."""
    input:
        tex="paper/main.tex",
        bib="paper/references.bib",
        report=REPORT_FILES,
    output:
        "paper/main.pdf",
    log:
        f"{RESULTS}/logs/paper.log",
    shell:
        "latexmk -pdf -interaction=nonstopmode -halt-on-error -cd {input.tex} > {log} 2>&1"
