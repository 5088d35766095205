"""`samplecnn models list|info`: what the registry can build."""

from __future__ import annotations

from typing import Annotated

import typer

from samplecnn_cli.cli.console import App, console, print_json

app = App(help="List and describe the models the registry can build.")


@app.command("list")
def list_command(
    pattern: Annotated[str, typer.Argument(help="Shell wildcard, e.g. 'sample-*' or 'frame-mel-*'.")] = "*",
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the named models (the paper's configurations and plugins) with their size and published AUC."""
    from samplecnn_cli.models.registry import list_models, model_info

    infos = [model_info(name) for name in list_models(pattern)]
    for info in infos:
        info.pop("layers", None)
    if json_out:
        print_json(infos)
        return
    console.print(models_table(infos))
    console.print("Any other configuration is reachable by name: sample-M^N (or sample-MpowN), sample-SxM^N, "
                  "sample-D-D-...-D, frame-mel-W\\[xH], frame-raw-W\\[xH].", style="dim")


def models_table(infos: list[dict]):
    """The list as a table that fits 80 columns: the family is the name's prefix, so it has no column;
    the rate aliases (sample-8k) are shown, not the D-D-...-D spellings (`--json` has them all)."""
    from rich import box
    from rich.table import Table

    table = Table(title=f"samplecnn models ({len(infos)})", title_justify="left", box=box.SIMPLE_HEAD,
                  show_edge=False, collapse_padding=True,
                  pad_edge=False)
    for column, justify in (("name", "left"), ("alias", "left"), ("input\nsamples", "right"),
                            ("length\nms", "right"), ("rate\nkHz", "right"), ("params", "right"),
                            ("paper\nMTAT AUC", "right")):
        table.add_column(column, justify=justify, no_wrap=True)
    for info in infos:
        paper = info["paper"] or {}
        short_aliases = [alias for alias in info["aliases"] if alias.count("-") == 1]
        table.add_row(
            info["name"], ", ".join(short_aliases) or "",
            f"{info['input_samples']:,}" if info["input_samples"] else "?",
            f"{info['input_ms']:,.0f}" if info["input_ms"] else "?",
            f"{info['sample_rate'] / 1000:g}" if info["sample_rate"] else "?",
            f"{info['params'] / 1e6:.2f} M",
            f"{paper['mtat_auc']:.4f}" if paper.get("mtat_auc") else "–",
        )
    return table


@app.command("info")
def info_command(
    name: Annotated[str, typer.Argument(help="Model name, e.g. 'sample-3^9', 'sample-8k', 'frame-mel-729x243'.")],
    num_outputs: Annotated[int, typer.Option("--num-outputs", min=1, help="Number of outputs (labels).")] = 50,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Describe one model layer by layer, shaped like Table 1 of the paper."""
    from rich.table import Table

    from samplecnn_cli.models.registry import create_model, model_info

    info = model_info(name, create_model(name, num_outputs=num_outputs))
    if json_out:
        print_json(info)
        return
    title = f"{info['name']}: {info['family']}, {info['input_samples']:,} samples = {info['input_ms']:,.0f} ms " \
            f"at {info['sample_rate']:,} Hz" if info["input_samples"] else info["name"]
    console.print(title, highlight=False, soft_wrap=True)  # above the table, not squeezed to its width
    table = Table()
    for column, justify in (("layer", "left"), ("stride", "right"), ("output", "right"), ("params", "right")):
        table.add_column(column, justify=justify)
    for row in info.get("layers", []):
        output = f"{row['output_length']:,} × {row['channels']}" if row["output_length"] else f"{row['channels']}"
        table.add_row(row["layer"], row["stride"], output, f"{row['params']:,}")
    console.print(table)
    extra = ""
    if "params_conv_dense" in info:
        bn = info["params"] - info["params_conv_dense"]
        extra = f" = {info['params_conv_dense']:,} conv/dense weights+biases + {bn:,} batch-norm γ/β"
    console.print(f"Trainable parameters: {info['params']:,}{extra}")
    if info["paper"] and info["paper"]["mtat_auc"]:
        console.print(f"Paper ({info['paper']['table']}): MTAT ROC-AUC {info['paper']['mtat_auc']:.4f}")
