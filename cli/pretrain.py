"""``medcl pretrain``: self-supervised pretraining (the methods of medcl.pretrain.registry).

The options are generated from the run's config (medcl.pretrain.config: every setting's default
and help are written there once) and listed by section in --help: data, encoder, augmentation,
training, run, then each method's own (a setting several methods share is listed once, under
their names).
"""
from __future__ import annotations

import click

from medcl.cli.options import GroupedCommand, common_options, options_from

SECTIONS = (("data", "Data"), ("encoder", "Image encoder"), ("augment", "Augmentation"), ("train", "Training"),
            ("run", "Run"))


def method_options(func):
    """Each method's own settings, under a section named by the methods that have them."""
    from medcl.pretrain.config import method_leaves, methods_of
    from medcl.pretrain.registry import METHODS

    seen: dict[str, object] = {}
    for method in METHODS:
        for leaf in method_leaves(method):
            if leaf.name in seen:
                if seen[leaf.name].signature() != leaf.signature():
                    raise RuntimeError(f"two methods define --{leaf.name} differently; share one field")
                continue
            seen[leaf.name] = leaf
    groups: dict[str, list] = {}
    for name, leaf in seen.items():
        users = methods_of(name)
        groups.setdefault(", ".join(users), []).append(leaf)
    for group in reversed(list(groups)):  # decorators apply bottom-up: the first group ends on top
        func = options_from(groups[group], f"Method options: {group}")(func)
    return func


def section_options(func):
    from medcl.config import leaves
    from medcl.pretrain.config import PretrainConfig

    by_section: dict[str, list] = {}
    for leaf in leaves(PretrainConfig):
        by_section.setdefault(leaf.path[0] if len(leaf.path) > 1 else "method", []).append(leaf)
    func = method_options(func)
    for section, title in reversed(SECTIONS):
        func = options_from(by_section[section], title, skip=("device",))(func)  # --device: common_options
    return options_from(by_section["method"], "Method")(func)


def run(**opts) -> None:
    """Pretrain an image encoder and write OUT/encoder.safetensors.

    contig aligns images with genetics; simclr and swav learn from views of images (--pairs);
    puzzle solves multimodal jigsaw puzzles through the Sinkhorn operator. Options of another
    method than --method are ignored with a warning (--pairs and --modalities: refused).

    Runs on one process, or one per GPU under torchrun or srun (DDP; negatives span the global
    batch). Ctrl-C (SIGINT) checkpoints after the step and exits 130 (twice: at once, no
    checkpoint); SIGTERM/SIGUSR1 checkpoint and exit 143. --resume auto --out RUN continues
    exactly with the run's config.yaml; options given again must match it, except --epochs
    (the schedule is recomputed and recorded), --batch-size (same global batch), --device,
    --workers, --decode, --log-every, --checkpoint-every and --max-bad-fraction.
    Writes OUT/curves.png (loss and validation curves) at each epoch's end.
    """
    from medcl.pretrain import run_pretrain
    from medcl.pretrain.resume import options_config

    ctx = click.get_current_context()
    given = {k for k in opts if ctx.get_parameter_source(k) is not click.core.ParameterSource.DEFAULT}
    run_pretrain(options_config(opts, given), given=given)


def make_command() -> click.Command:
    """The command with the options of the methods registered now (medcl.pretrain.registry)."""
    def command(**opts) -> None:
        run(**opts)

    command.__doc__ = run.__doc__
    made = click.command("pretrain", cls=GroupedCommand)(section_options(common_options(command)))
    made.options_of_mapping = options_of_mapping
    return made


def options_of_mapping(mapping: dict) -> dict:
    """--config with a run's config.yaml (sections: data, encoder, ..., the method's): the
    settings it holds, by option name (a flat config.yaml is by option name already)."""
    from medcl.pretrain.config import PretrainConfig

    if not any(isinstance(v, dict) for v in mapping.values()):
        return mapping
    cfg = PretrainConfig.from_dict(mapping)
    flat = cfg.flat()
    out = {k: v for k, v in mapping.items() if not isinstance(v, dict)}
    for leaf in cfg.leaves():
        if _holds(mapping, leaf.path):
            value = flat[leaf.name]
            out[leaf.name] = value
    return out


def _holds(mapping, path: tuple) -> bool:
    for key in path:
        if not isinstance(mapping, dict) or key not in mapping:
            return False
        mapping = mapping[key]
    return True
