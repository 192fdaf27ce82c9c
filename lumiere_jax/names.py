"""Names declared once: the device mesh's axes and the logical axes of the weights.

Mesh axes say where data and weights live; logical axes say what a weight dimension means.
`config.mesh.rules` maps each logical name to a mesh axis (or None) through one table.
"""

# Mesh axes.
DATA = "data"    # batch rows (data parallelism)
FSDP = "fsdp"    # batch rows, and weights split along their largest divisible dimension
TIME = "time"    # frames of a clip (context parallelism)
MESH_AXES = (DATA, FSDP, TIME)
BATCH_AXES = (DATA, FSDP)  # the axes a batch's rows split over
# The axes weights and optimizer state split over (ZeRO-3): fsdp, and time, whose shards all
# hold the same weights (they differ only in the frames they see).
WEIGHT_SHARD_AXES = (FSDP, TIME)

# Logical weight axes.
EMBED = "embed"              # model width: inputs and outputs of dense layers, text width
MLP = "mlp"                  # hidden width of dense layers and conditioning projections
HEADS = "heads"              # attention width (heads x head size), or per-head tables
CONV_IN = "conv_in"          # input channels of a convolution
CONV_OUT = "conv_out"        # output channels of a convolution
CONV_WINDOW = "conv_window"  # spatial or temporal taps of a convolution
NORM = "norm"                # scale and bias of a normalisation
VOCAB = "vocab"              # token embedding rows
POSITION = "position"        # rows of a position-bias table
LOGICAL_AXES = (EMBED, MLP, HEADS, CONV_IN, CONV_OUT, CONV_WINDOW, NORM, VOCAB, POSITION)
