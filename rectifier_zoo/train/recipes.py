"""Named training recipes: `Config` instances, the paper's and the ones derived from it.

    from rectifier_zoo.train import recipes
    config = recipes.get_recipe("paper_small").override(activation="relu", data_dir="...")

`PAPER` is the paper's recipe (Sec. 2.3 "Training", values from `rectifier_zoo.paper`) on
Model A and ImageNet; every other recipe is `PAPER` with some fields replaced. Flags of
`training/train.py` override the fields of the chosen recipe (`--recipe`). `RECIPE_NOTES` has
each recipe's command and what it was measured to reach. Pure Python.
"""

from __future__ import annotations

from rectifier_zoo import paper
from rectifier_zoo.architectures import Architecture, ConvStage
from rectifier_zoo.checks import check_choice
from rectifier_zoo.train.config import Config


def _named(base: Config, name: str, **values) -> Config:
    """`base` with its own name and run folder (runs/<name>), and `values` replaced."""
    return base.override(name=name, model_dir=f"runs/{name}", **values)


# Sec. 2.3 "Training": batch 128, momentum 0.9, weight decay 5e-4, dropout 0.5 on fc1 / fc2,
# learning rate 1e-2 divided by 10 twice over about 80 epochs, scale jitter [256, 512], 224
# crops, flips, PCA lighting; MSRA init (Sec. 2.2) and channel-wise PReLU (Sec. 2.1).
PAPER = _named(Config(), "paper_model_a", model="model_a", dataset="imagenet2012")

# Not in the paper: a reduced PReLU-net with the same pieces (MSRA init, channel-wise PReLU,
# max-pools, SPP, two fc layers with dropout), sized for the 64 px crops of the synthetic set.
# About the per-channel std of ImageNet pixels (57-58 on 0..255): the quickstart's models see
# inputs of unit scale, whichever network `model` names. With the paper's raw +-128 inputs a
# small net is scale-unbalanced: its tiny fixed-std classifier gets relative updates of 50% per
# step at lr 1e-2 and high-contrast data (scanned digits: pixel rms 82) diverge within two
# epochs; the 14-layer model_small did too (NaN at step 18 at batch 64 on 64 px digit crops).
QUICKSTART_INPUT_STD = 58.0
QUICKSTART_ARCHITECTURE = Architecture(
    name="quickstart_net",
    stages=(
        ConvStage(1, 32, 5, strides=2, padding=2, pool_size=2, pool_strides=2),  # 64 -> 16
        ConvStage(2, 64, 3, pool_size=2, pool_strides=2),  # 16 -> 8
        ConvStage(2, 96, 3),  # 8 x 8 map
    ),
    spp_levels=(4, 2, 1),
    fc_units=(256, 256),
    reference="reduced PReLU-net for the synthetic quickstart (not in the paper)",
)

RECIPES: dict[str, Config] = {
    "quickstart": _named(
        PAPER,
        "quickstart",
        model=QUICKSTART_ARCHITECTURE,
        dataset="synthetic",
        batch_size=64,
        epochs=60.0,
        lr_boundaries=(38.0, 52.0),
        warmup_epochs=1.0,
        # Unit-scale inputs: MSRA for the fc layers too keeps every layer's signal at unit scale.
        input_std=QUICKSTART_INPUT_STD,
        fc_initializer="msra_fan_in",
        dropout=0.0,  # the synthetic set underfits rather than overfits
        crop_size=64,
        min_scale=72,  # the paper's scale jitter, scaled down
        max_scale=96,
        eval_resize=80,
        checkpoint_every_steps=500,
        eval_every_epochs=4,
        log_every_steps=10,
    ),
    "paper_model_a": PAPER,
    "paper_model_b": _named(PAPER, "paper_model_b", model="model_b"),
    "paper_model_c": _named(PAPER, "paper_model_c", model="model_c"),
    # Table 2's protocol: a fixed shorter side of 256 in training and testing (no scale jitter),
    # 75 epochs; the switch epochs (inferred) scaled from 80 to 75 epochs.
    "paper_small": _named(
        PAPER,
        "paper_small",
        model="model_small",
        min_scale=paper.TABLE2_SCALE,
        max_scale=paper.TABLE2_SCALE,
        eval_resize=paper.TABLE2_SCALE,
        epochs=float(paper.TABLE2_EPOCHS),
        lr_boundaries=tuple(
            epoch * paper.TABLE2_EPOCHS / paper.EPOCHS for epoch in paper.LR_SWITCH_EPOCHS
        ),
    ),
    # Fig. 3 compares the first epochs of MSRA and Xavier init: no learning-rate switch.
    "init_study": _named(
        PAPER, "init_study", model="model_deep", activation="relu", epochs=10.0, lr_boundaries=()
    ),
}

RECIPE_NOTES: dict[str, str] = {
    "quickstart": """The default run: a reduced PReLU-net with SPP on the built-in synthetic set,
CPU-sized.

    python training/train.py            # the same as --recipe=quickstart

Five conv layers (5x5/2 32, 2x 3x3 64, 2x 3x3 96, max-pools), SPP {4, 2, 1}, fc 256-256 without
dropout (the synthetic set underfits rather than overfits), channel-wise PReLU, MSRA init for
conv and fc layers on inputs divided by 58 after the mean subtraction (unit scale; see
QUICKSTART_INPUT_STD); 64 px crops of images whose shorter side is jittered in [72, 96] (the
paper's scale jitter, scaled down), flips, PCA lighting; SGD with momentum 0.9, weight decay 5e-4
on kernels, learning rate 1e-2 (one warm-up epoch), then 1e-3 at epoch 38 and 1e-4 at epoch 52,
60 epochs. `--model=...` swaps the network and keeps this input scale and fc init (model_small
on the digits: 10.8% error after 90 steps).
Measured on 2 shared CPU cores: 98.2% top-1 on the 500 synthetic validation images (1,113 s
wall; an earlier, less loaded measurement took 4.5 min); on real folder sets without flags,
98.3%, 99.7% and 98.3% (seeds 0-2) on scikit-learn's digits and 40/40 on scikit-image's LFW
face / non-face subset (3 seeds).""",
    "paper_model_a": """Model A (Table 3, 19 layers) with the paper's recipe on ImageNet.

    python training/train.py --recipe=paper_model_a --data_dir=~/tensorflow_datasets""",
    "paper_model_b": """Model B (Table 3, 22 layers) with the paper's recipe on ImageNet.

    python training/train.py --recipe=paper_model_b --data_dir=~/tensorflow_datasets""",
    "paper_model_c": """Model C (Table 3, 22 layers, wider) with the paper's recipe on ImageNet.

    python training/train.py --recipe=paper_model_c --data_dir=~/tensorflow_datasets""",
    "paper_small": """The 14-layer model of Table 1 with Table 2's protocol (the PReLU vs ReLU
study) on ImageNet: shorter side fixed at 256 in training and testing, 224 crops, 75 epochs; the
paper's figures are 10-view errors.

    python training/train.py --recipe=paper_small --data_dir=~/tensorflow_datasets
    python training/train.py --recipe=paper_small --activation=relu --data_dir=...
    python training/evaluate.py --models=exported_models/paper_small/1 --protocol=ten_view \
        --dataset=imagenet2012 --data_dir=~/tensorflow_datasets""",
    "init_study": """The 30-layer ReLU model of the initialization study (Sec. 2.2, Fig. 3) on
ImageNet, for 10 epochs without a learning-rate switch.

    python training/train.py --recipe=init_study --data_dir=~/tensorflow_datasets""",
}


def get_recipe(name: str) -> Config:
    """The recipe called `name` (one of `RECIPES`)."""
    check_choice("recipe", name, tuple(RECIPES))
    return RECIPES[name]
