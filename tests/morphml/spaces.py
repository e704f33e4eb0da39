"""Search spaces shared by the foundation tests: small enough to build fast, varied in shape."""

from __future__ import annotations

from morphml import CellSpace, FloatRange, IntRange, Layer, SearchSpace, Space


def cnn_space() -> SearchSpace:
    """The README's example space."""
    return SearchSpace("cnn").add_layers(
        Layer.input(shape=(1, 28, 28)),
        Layer.conv2d(filters=[32, 64], kernel_size=[3, 5]),
        Layer.relu(),
        Layer.maxpool(pool_size=2),
        Layer.flatten(),
        Layer.dense(units=[64, 128]),
        Layer.output(units=10),
    )


def rich_space() -> SearchSpace:
    """Ranges, activation choices, optional layers, repeats, residuals and global pooling."""
    return SearchSpace("rich").add_layers(
        Layer.input(shape=(3, 16, 16)),
        Layer.conv2d(filters=IntRange(8, 16), kernel_size=[1, 3, 5]),
        Layer.batchnorm(optional=True),
        Layer.activation(["relu", "gelu", "silu", "tanh", "sigmoid", "identity"]),
        Layer.repeat(
            Layer.residual(Layer.conv2d(filters=16, kernel_size=[3, 5]), Layer.relu()),
            depth=[0, 1, 2],
        ),
        Layer.avgpool(pool_size=[2, 4], optional=True),
        Layer.global_avgpool(),
        Layer.dropout(rate=FloatRange(0.0, 0.5)),
        Layer.dense(units=IntRange(16, 256, log=True), optional=True),
        Layer.output(units=5),
    )


def mlp_space() -> SearchSpace:
    return SearchSpace("mlp").add_layers(
        Layer.input(shape=(20,)),
        Layer.repeat(
            Layer.dense(units=[8, 16, 32]), Layer.activation(["relu", "tanh"]), depth=IntRange(1, 3)
        ),
        Layer.batchnorm(optional=True),
        Layer.output(units=3),
    )


def small_cell_space() -> CellSpace:
    return CellSpace(name="nb201-small", input_shape=(3, 8, 8), stem_channels=4, cells_per_stage=1)


def all_spaces() -> dict[str, Space]:
    return {
        "cnn": cnn_space(),
        "rich": rich_space(),
        "mlp": mlp_space(),
        "cell": small_cell_space(),
    }
