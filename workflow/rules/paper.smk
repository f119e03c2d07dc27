# paper/main.pdf from the LaTeX source and the generated tables and figures. Needs a TeX
# distribution with latexmk (see README); nothing else in the workflow does. Defined only for an
# experiment whose report goes into paper/ (workflow.report_dir: paper), the tables and figures
# that paper/main.tex reads: another experiment's numbers never end up in the paper.

if REPORT_DIR == "paper":

    rule paper:
        """Build paper/main.pdf (target: snakemake paper)."""
        input:
            tex="paper/main.tex",
            bib="paper/references.bib",
            ewc_sweep="paper/ewc_sweep.tex",
            report=REPORT_FILES,
        output:
            "paper/main.pdf",
        log:
            f"{RESULTS}/logs/paper.log",
        shell:
            "latexmk -pdf -interaction=nonstopmode -halt-on-error -cd {input.tex:q} > {log:q} 2>&1"
