"""The numbers of He et al. 2015, "Delving Deep into Rectifiers" (arXiv:1502.01852), in one place.

Every module that honours one of the paper's values imports it from here, so a reader can check
each against the paper once. Sections and tables are numbered as in the paper:

- Sec. 2.1: Parametric Rectifiers (PReLU); Table 1: the learned slopes of the 14-layer model.
- Sec. 2.2: initialization of filter weights for rectifiers; Figs. 2-3: the init study.
- Sec. 2.3: architectures and implementation (Table 3, and the "Training" and "Testing"
  paragraphs: the recipe, 10-view and dense multi-scale testing).
- Sec. 3: experiments on ImageNet; Table 2 (ReLU vs PReLU), Tables 4-7 (results).

Pure Python: importing it loads neither Keras nor TensorFlow.
"""

# --- Sec. 2.1: PReLU ------------------------------------------------------------------------
# "We use a_i = 0.25 as the initialization."
PRELU_INITIAL_SLOPE = 0.25

# --- Sec. 2.2: initialization ---------------------------------------------------------------
# The three fc layers of the ImageNet models are drawn with these fixed stds, because the input
# is only mean-subtracted (about +-128); conv layers use the MSRA rule std = sqrt(2 / ((1+a^2) n)).
FC_STDS = (0.01, 0.01, 0.001)

# --- Sec. 2.3 "Training": the recipe ---------------------------------------------------------
BATCH_SIZE = 128
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4  # on weights only: never on the PReLU slopes (Sec. 2.1) or biases
DROPOUT = 0.5  # after fc1 and fc2
LEARNING_RATES = (1e-2, 1e-3, 1e-4)  # each switch "when the error plateaus"
EPOCHS = 80  # "about 80 epochs"
# Not in the paper (inferred): the epochs of the two step-schedule switches, for runs that do
# not watch the validation plateau (`lr_schedule="plateau"` does).
LR_SWITCH_EPOCHS = (40, 65)
SCALE_JITTER = (256, 512)  # the shorter side s is drawn from [256, 512]
CROP_SIZE = 224
# AlexNet's "colour altering" (Krizhevsky et al. 2012, Sec. 4.1): PCA lighting noise with this
# std, along the eigenvectors of the ImageNet RGB covariance (pixels in [0, 1]).
PCA_LIGHTING_STD = 0.1
PCA_EIGENVALUES = (0.2175, 0.0188, 0.0045)
PCA_EIGENVECTORS = (  # columns are the eigenvectors
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)
# The paper subtracts the per-pixel mean image; we subtract its per-channel mean on 0..255 (the
# Caffe / VGG figures), which needs no mean image and fits any input size.
IMAGENET_MEAN_RGB = (123.68, 116.779, 103.939)

# --- Sec. 2.3 "Testing" -----------------------------------------------------------------------
TEST_RESIZE = 256  # single view and 10-view: shorter side 256, 224 crops
DENSE_SCALES = (256, 384, 480)  # dense multi-view testing on feature maps, each mirrored too
DENSE_WINDOW_CELLS = 14  # a 224 window is 14x14 cells of the last conv map (stride 16 px)

# --- Table 2: the PReLU study's protocol (14-layer model) -------------------------------------
TABLE2_SCALE = 256  # fixed shorter side in training and testing (no scale jitter)
TABLE2_EPOCHS = 75

# --- Sec. 3: results our reduced studies compare with (top-1, top-5 error %) -----------------
TABLE2_ERRORS = {  # 14-layer model, 10-view
    "relu": (33.82, 13.34),
    "prelu_channel_shared": (32.71, 12.87),
    "prelu_channel_wise": (32.64, 12.75),
}
# Table 1: learned slopes of the 14-layer model, (channel-shared, channel-wise mean); ranges
# for the stacked conv layers.
TABLE1_SLOPES = {
    "conv1": (0.681, 0.596),
    "conv2": ((0.103, 0.561), (0.204, 0.464)),
    "conv3": ((0.008, 0.210), (0.124, 0.198)),
    "fc1": (0.063, 0.074),
    "fc2": (0.031, 0.075),
}
# Table 3: complexity at 224x224 (conv + fc multiply-adds).
TABLE3_MULTIPLY_ADDS = {"model_a": 1.90e10, "model_b": 2.32e10, "model_c": 5.30e10}
VGG19_MULTIPLY_ADDS = 1.96e10
